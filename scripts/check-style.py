#!/usr/bin/python3
"""Check the written C style of src/ and tests/ (STYLE.md, rule 14):

- braces on every if / else / for / while / do body;
- no assignment inside a condition;
- none of atoi, atol, sprintf, vsprintf, strcpy, strcat, strtok, gets.

usage: scripts/check-style.py [FILE.c ...]   (default: src/*/*.[ch] tests/*/*.[ch])
Prints one line per breach (file:line: rule) and exits 1 if there is any.
"""
import glob
import os
import re
import sys

BANNED = re.compile(r"\b(atoi|atol|atoll|sprintf|vsprintf|strcpy|strcat|strtok|gets)\s*\(")
KEYWORD = re.compile(r"^\s*(?:\}\s*)?(?:else\s+)?(if|for|while|switch)\s*\(")
ELSE = re.compile(r"^\s*(?:\}\s*)?else\b(?!\s+if\b)")
ASSIGN = re.compile(r"(?<![=!<>+\-*/%&|^])=(?!=)")


def strip(text):
    """Blank out comments, string and character literals, keeping newlines."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def condition_end(text, start):
    """Index just past the ')' matching the '(' at start."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def check(path):
    with open(path) as f:
        raw = f.read()
    text = strip(raw)
    # Preprocessor lines (macros) are not checked.
    text = re.sub(r"(?m)^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    bad = []

    def line_of(pos):
        return text.count("\n", 0, pos) + 1

    for m in BANNED.finditer(text):
        bad.append((line_of(m.start()), "banned function %s()" % m.group(1)))
    for m in re.finditer(r"\b(if|for|while|switch)\s*\(", text):
        # a `while (...);` that closes a do-block is fine
        kw = m.group(1)
        open_paren = text.index("(", m.start())
        end = condition_end(text, open_paren)
        cond = text[open_paren + 1:end - 1]
        rest = text[end:].lstrip(" \t\n")
        if kw in ("if", "while", "switch"):
            if ASSIGN.search(cond):
                bad.append((line_of(m.start()), "assignment inside the %s condition" % kw))
        if kw == "while" and rest.startswith(";"):
            before = text[:m.start()].rstrip()
            if before.endswith("}"):
                continue  # do { ... } while (...);
        if not rest.startswith("{"):
            bad.append((line_of(m.start()), "%s body without braces" % kw))
    for m in re.finditer(r"\belse\b", text):
        rest = text[m.end():].lstrip(" \t\n")
        if not (rest.startswith("{") or rest.startswith("if")):
            bad.append((line_of(m.start()), "else body without braces"))
    for m in re.finditer(r"\bdo\b", text):
        rest = text[m.end():].lstrip(" \t\n")
        if not rest.startswith("{"):
            bad.append((line_of(m.start()), "do body without braces"))
    return ["%s:%d: %s" % (path, ln, why) for ln, why in sorted(set(bad))]


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = argv[1:] or sorted(glob.glob(os.path.join(root, "src", "*", "*.[ch]")) +
                               glob.glob(os.path.join(root, "tests", "*", "*.[ch]")))
    problems = []
    for f in files:
        problems += check(f)
    for p in problems:
        print(p)
    print("style: %d files checked, %d problems" % (len(files), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
