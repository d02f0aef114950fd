#include "pem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bearssl_pem.h>

#include "fmt.h"

/* Growable byte buffer with a hard cap. */
struct pem_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t max;
	int err; /* enum pem_err, sticky */
};

static void buf_append(struct pem_buf *b, const void *data, size_t len)
{
	if (b->err != PEM_OK) {
		return;
	}
	if (len > b->max - b->len) {
		b->err = PEM_ERR_TOO_BIG;
		return;
	}
	if (b->len + len > b->cap) {
		size_t cap = b->cap != 0 ? b->cap : 1024;
		uint8_t *p;

		while (cap < b->len + len) {
			cap *= 2;
		}
		if (cap > b->max) {
			cap = b->max;
		}
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->err = PEM_ERR_NOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void buf_sink(void *ctx, const void *data, size_t len)
{
	buf_append(ctx, data, len);
}

/* Incremental PEM decoding: feed text in any pieces, then finish. */
struct pem_reader {
	br_pem_decoder_context dec;
	struct pem_buf obj;
	char name[128];
	int inobj;
	int count;
	int err;
	pem_object_fn fn;
	void *ctx;
};

/* BearSSL leaves the closing dashes in the name of a BEGIN line that
 * ends in CRLF: drop trailing dashes and blanks. */
static void trim_name(char *name)
{
	size_t n = strlen(name);

	while (n > 0 && (name[n - 1] == '-' || name[n - 1] == ' ' || name[n - 1] == '\r')) {
		name[--n] = '\0';
	}
}

static void reader_init(struct pem_reader *r, pem_object_fn fn, void *ctx)
{
	memset(r, 0, sizeof(*r));
	br_pem_decoder_init(&r->dec);
	r->obj.max = PEM_OBJ_MAX;
	r->fn = fn;
	r->ctx = ctx;
}

static void reader_feed(struct pem_reader *r, const uint8_t *p, size_t len)
{
	while (len > 0 && r->err == PEM_OK) {
		size_t k = br_pem_decoder_push(&r->dec, p, len);

		p += k;
		len -= k;
		switch (br_pem_decoder_event(&r->dec)) {
		case BR_PEM_BEGIN_OBJ:
			fmt_snprintf(r->name, sizeof(r->name), "%s", br_pem_decoder_name(&r->dec));
			trim_name(r->name);
			r->obj.len = 0;
			r->obj.err = PEM_OK;
			br_pem_decoder_setdest(&r->dec, buf_sink, &r->obj);
			r->inobj = 1;
			break;
		case BR_PEM_END_OBJ:
			if (!r->inobj) {
				break;
			}
			r->inobj = 0;
			if (r->obj.err != PEM_OK) {
				r->err = r->obj.err;
				break;
			}
			if (r->fn(r->ctx, r->name, r->obj.p, r->obj.len) != 0) {
				r->err = PEM_ERR_CALLBACK;
				break;
			}
			r->count++;
			break;
		case BR_PEM_ERROR:
			r->err = PEM_ERR_SYNTAX;
			break;
		default:
			break;
		}
	}
}

/* Number of objects, or a negative enum pem_err. Frees the reader. */
static int reader_finish(struct pem_reader *r)
{
	int rc;

	/* A last line without its newline is common enough to accept. */
	reader_feed(r, (const uint8_t *)"\n", 1);
	if (r->err == PEM_OK && r->inobj) {
		r->err = PEM_ERR_SYNTAX;
	}
	rc = r->err != PEM_OK ? r->err : r->count;
	if (r->obj.p != NULL) {
		memset(r->obj.p, 0, r->obj.cap); /* may have held a private key */
		free(r->obj.p);
	}
	r->obj.p = NULL;
	return rc;
}

int pem_decode(const void *text, size_t len, pem_object_fn fn, void *ctx)
{
	struct pem_reader r;

	reader_init(&r, fn, ctx);
	reader_feed(&r, text, len);
	return reader_finish(&r);
}

const char *pem_strerror(int err)
{
	switch (err) {
	case PEM_ERR_SYNTAX:
		return "malformed PEM";
	case PEM_ERR_TOO_BIG:
		return "a PEM object is too large";
	case PEM_ERR_NOMEM:
		return "out of memory";
	case PEM_ERR_CALLBACK:
		return "cannot use a PEM object";
	default:
		return "no error";
	}
}

int pem_load_file(const char *path, const char *label, pem_object_fn fn, void *ctx,
		  char *err, size_t errlen)
{
	struct pem_reader r;
	uint8_t chunk[4096];
	size_t total = 0;
	int fd;
	int rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fmt_snprintf(err, errlen, "%s: %s", label, strerror(errno));
		return -1;
	}
	reader_init(&r, fn, ctx);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			fmt_snprintf(err, errlen, "%s: %s", label, strerror(errno));
			close(fd);
			reader_finish(&r);
			return -1;
		}
		if (n == 0) {
			break;
		}
		total += (size_t)n;
		if (total > PEM_FILE_MAX) {
			fmt_snprintf(err, errlen, "%s: file larger than %u bytes", label, PEM_FILE_MAX);
			close(fd);
			reader_finish(&r);
			return -1;
		}
		reader_feed(&r, chunk, (size_t)n);
		if (r.err != PEM_OK) {
			break;
		}
	}
	memset(chunk, 0, sizeof(chunk));
	close(fd);
	rc = reader_finish(&r);
	if (rc == PEM_ERR_CALLBACK) {
		return -1;
	}
	if (rc < 0) {
		fmt_snprintf(err, errlen, "%s: %s", label, pem_strerror(rc));
		return -1;
	}
	return rc;
}

static int is_cert(const char *name)
{
	return strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "X509 CERTIFICATE") == 0 ||
	       strcmp(name, "TRUSTED CERTIFICATE") == 0;
}

/* ---- trust anchors ---- */

struct anchors_ctx {
	br_x509_trust_anchor *v;
	size_t n;
	size_t cap;
	size_t seen;    /* certificates met, decodable or not */
	size_t skipped; /* certificates BearSSL could not decode */
	int strict;
	const char *label;
	char *err;
	size_t errlen;
};

void pem_free_anchors(br_x509_trust_anchor *ta, size_t n)
{
	if (ta == NULL) {
		return;
	}
	for (size_t i = 0; i < n; i++) {
		free(ta[i].dn.data); /* one block: DN then key bytes */
	}
	free(ta);
}

/* Fill ta from a certificate: 0, or a BearSSL X.509 error code (> 0), or
 * -1 on allocation failure. */
static int anchor_from_der(br_x509_trust_anchor *ta, const uint8_t *der, size_t len)
{
	br_x509_decoder_context dc;
	struct pem_buf dn = {.max = PEM_DN_MAX};
	const br_x509_pkey *pk;
	size_t klen;
	uint8_t *mem;

	br_x509_decoder_init(&dc, buf_sink, &dn);
	br_x509_decoder_push(&dc, der, len);
	pk = br_x509_decoder_get_pkey(&dc);
	if (pk == NULL || dn.err != PEM_OK) {
		int e = br_x509_decoder_last_error(&dc);
		free(dn.p);
		if (dn.err == PEM_ERR_NOMEM) {
			return -1;
		}
		return e != 0 ? e : BR_ERR_X509_LIMIT_EXCEEDED;
	}
	if (pk->key_type == BR_KEYTYPE_RSA) {
		klen = pk->key.rsa.nlen + pk->key.rsa.elen;
	} else if (pk->key_type == BR_KEYTYPE_EC) {
		klen = pk->key.ec.qlen;
	} else {
		free(dn.p);
		return BR_ERR_X509_UNSUPPORTED;
	}
	mem = malloc(dn.len + klen + 1);
	if (mem == NULL) {
		free(dn.p);
		return -1;
	}
	if (dn.len > 0) {
		memcpy(mem, dn.p, dn.len);
	}
	free(dn.p);
	memset(ta, 0, sizeof(*ta));
	ta->dn.data = mem;
	ta->dn.len = dn.len;
	ta->flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
	ta->pkey.key_type = pk->key_type;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		uint8_t *n = mem + dn.len;
		uint8_t *e = n + pk->key.rsa.nlen;

		memcpy(n, pk->key.rsa.n, pk->key.rsa.nlen);
		memcpy(e, pk->key.rsa.e, pk->key.rsa.elen);
		ta->pkey.key.rsa.n = n;
		ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
		ta->pkey.key.rsa.e = e;
		ta->pkey.key.rsa.elen = pk->key.rsa.elen;
	} else {
		uint8_t *q = mem + dn.len;

		memcpy(q, pk->key.ec.q, pk->key.ec.qlen);
		ta->pkey.key.ec.curve = pk->key.ec.curve;
		ta->pkey.key.ec.q = q;
		ta->pkey.key.ec.qlen = pk->key.ec.qlen;
	}
	return 0;
}

static int anchors_add(void *ctx, const char *name, const uint8_t *der, size_t len)
{
	struct anchors_ctx *a = ctx;
	int rc;

	if (!is_cert(name)) {
		return 0;
	}
	a->seen++;
	if (a->n == a->cap) {
		size_t cap = a->cap != 0 ? a->cap * 2 : 16;
		br_x509_trust_anchor *v = realloc(a->v, cap * sizeof(*v));

		if (v == NULL) {
			fmt_snprintf(a->err, a->errlen, "%s: out of memory", a->label);
			return -1;
		}
		a->v = v;
		a->cap = cap;
	}
	rc = anchor_from_der(&a->v[a->n], der, len);
	if (rc < 0) {
		fmt_snprintf(a->err, a->errlen, "%s: out of memory", a->label);
		return -1;
	}
	if (rc > 0) {
		if (a->strict) {
			fmt_snprintf(a->err, a->errlen,
				 "%s: certificate %zu cannot be decoded (BearSSL X.509 error %d)",
				 a->label, a->seen, rc);
			return -1;
		}
		a->skipped++;
		return 0;
	}
	a->n++;
	return 0;
}

int pem_load_anchors(const char *path, const char *label, int strict,
		     br_x509_trust_anchor **out, size_t *n, char *err, size_t errlen)
{
	struct anchors_ctx a = {
		.strict = strict, .label = label, .err = err, .errlen = errlen,
	};

	*out = NULL;
	*n = 0;
	if (pem_load_file(path, label, anchors_add, &a, err, errlen) < 0) {
		pem_free_anchors(a.v, a.n);
		return -1;
	}
	if (a.n == 0) {
		if (a.seen == 0) {
			fmt_snprintf(err, errlen, "%s: no certificate in it (PEM expected)", label);
		} else {
			fmt_snprintf(err, errlen, "%s: none of its %zu certificates can be decoded",
				 label, a.seen);
		}
		pem_free_anchors(a.v, a.n);
		return -1;
	}
	*out = a.v;
	*n = a.n;
	return 0;
}

/* ---- certificate chain ---- */

struct chain_ctx {
	br_x509_certificate *v;
	size_t n;
	size_t cap;
	const char *label;
	char *err;
	size_t errlen;
};

void pem_free_chain(br_x509_certificate *chain, size_t n)
{
	if (chain == NULL) {
		return;
	}
	for (size_t i = 0; i < n; i++) {
		free(chain[i].data);
	}
	free(chain);
}

static int chain_add(void *ctx, const char *name, const uint8_t *der, size_t len)
{
	struct chain_ctx *c = ctx;
	uint8_t *copy;

	if (!is_cert(name)) {
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap != 0 ? c->cap * 2 : 4;
		br_x509_certificate *v = realloc(c->v, cap * sizeof(*v));

		if (v == NULL) {
			fmt_snprintf(c->err, c->errlen, "%s: out of memory", c->label);
			return -1;
		}
		c->v = v;
		c->cap = cap;
	}
	copy = malloc(len > 0 ? len : 1);
	if (copy == NULL) {
		fmt_snprintf(c->err, c->errlen, "%s: out of memory", c->label);
		return -1;
	}
	memcpy(copy, der, len);
	c->v[c->n].data = copy;
	c->v[c->n].data_len = len;
	c->n++;
	return 0;
}

int pem_load_chain(const char *path, const char *label,
		   br_x509_certificate **out, size_t *n, char *err, size_t errlen)
{
	struct chain_ctx c = {.label = label, .err = err, .errlen = errlen};

	*out = NULL;
	*n = 0;
	if (pem_load_file(path, label, chain_add, &c, err, errlen) < 0) {
		pem_free_chain(c.v, c.n);
		return -1;
	}
	if (c.n == 0) {
		fmt_snprintf(err, errlen, "%s: no certificate in it (PEM expected)", label);
		pem_free_chain(c.v, c.n);
		return -1;
	}
	*out = c.v;
	*n = c.n;
	return 0;
}
