"""Corpus files that used to train on garbage or fail unclearly: each now loads correctly or fails naming the file.

One test per row of the "Corpus files" table in docs/reliability.md. Every file is tiny and written here.
"""

import gzip
import json

import pytest

import train.distillation.corpus as corpus_module
from train.distillation.corpus import CorpusFileError, clean_text, load_corpus


def _load(tmp_path, name: str, content: bytes, **kwargs):
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    return load_corpus([str(path)], cache_dir=str(tmp_path / "cache"), **kwargs)


def _texts(corpus) -> list[str]:
    return corpus["text"][:]


# ------------------------------------------------------------------------------- 1. UTF-16 text files


@pytest.mark.parametrize("name, content, reason", [
    ("bom.txt", "first text\nsecond text\n".encode("utf-16"), "UTF-16-LE byte-order mark"),
    ("be.txt", b"\xfe\xff" + "first text\nsecond text\n".encode("utf-16-be"), "UTF-16-BE byte-order mark"),
    ("nobom.txt", "first text\nsecond text\nthird\n".encode("utf-16-le"), "3 of its first 3 lines hold NUL bytes"),
    ("nobom.tsv.gz", "text\tlabel\nhello\t1\n".encode("utf-16-le"), "hold NUL bytes"),
    ("wide.jsonl", '{"text": "a"}\n'.encode("utf-32"), "UTF-32-LE byte-order mark"),
])
def test_utf16_file_is_refused_naming_the_file(tmp_path, name, content, reason):
    with pytest.raises(CorpusFileError, match=rf"{name}.* is not UTF-8: .*{reason}.*Re-encode it as UTF-8"):
        _load(tmp_path, name, content)


def test_a_few_nul_bytes_are_not_taken_for_utf16(tmp_path):
    corpus, stats = _load(tmp_path, "mostly.txt", b"one\ntwo\nthree\nfo\x00ur\n")
    assert _texts(corpus) == ["one", "two", "three", "four"] and stats.cleaned == 1


# ------------------------------------------------------------------ 2. NUL and invisible characters


def test_nul_and_zero_width_characters_are_removed_and_blank_texts_skipped(tmp_path):
    content = ("\ufeffstarts with a BOM\n"
               "zero\u200bwidth\u200c non\u200djoiner\n"
               "nul\x00 byte\x01 and\x7f controls\x9f\n"
               "soft\xadhyphen \u2066isolated\u2069 \u200emarks\u200f\n"
               "\u200b\ufeff\x00 \u2060\n"
               "visible \u0600 Arabic sign stays\n"
               "word\x0bspaced\x0cout\n").encode()
    corpus, stats = _load(tmp_path, "invisible.txt", content)
    assert _texts(corpus) == ["starts with a BOM", "zerowidth nonjoiner", "nul byte and controls",
                              "softhyphen isolated marks", "visible \u0600 Arabic sign stays", "word spaced out"]
    assert (stats.read, stats.kept, stats.skipped_blank, stats.cleaned) == (7, 6, 1, 6)


def test_invisible_characters_are_removed_in_every_format(tmp_path):
    (tmp_path / "a.tsv").write_bytes("id\ttext\n1\tta\x00b\u200b\n2\t\u200b\n".encode())
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "js\u0000on\ufeff"}) + "\n" + json.dumps({"text": "\x00"}))
    corpus, stats = load_corpus([str(tmp_path / "a.tsv"), str(tmp_path / "b.jsonl")], cache_dir=str(tmp_path / "c"))
    assert _texts(corpus) == ["tab", "json"] and stats.skipped_blank == 2


def test_clean_text_leaves_ordinary_text_alone():
    for text in ["plain", "tab\tand\nnewline inside", "émoji 🙂 and 日本語", "nbsp\xa0stays"]:
        assert clean_text(text) == text
    assert clean_text("  padded \u200b ") == "padded"


# ------------------------------------------------------------------------------------ 3. lone \r


def test_only_newline_and_crlf_end_a_txt_line(tmp_path):
    corpus, stats = _load(tmp_path, "mac.txt.gz", b"old\rmac line\r\nwindows line\r\nunix line\nend\r")
    assert _texts(corpus) == ["old mac line", "windows line", "unix line", "end"]
    assert stats.read == 4


def test_carriage_return_inside_a_field_becomes_a_space(tmp_path):
    (tmp_path / "q.csv").write_bytes(b'text,label\r\n"in\rside",1\r\n"two\r\nlines",2\r\n')
    (tmp_path / "r.jsonl").write_bytes(b'{"text": "json\\rtext"}\r\n')
    corpus, _ = load_corpus([str(tmp_path / "q.csv"), str(tmp_path / "r.jsonl")], cache_dir=str(tmp_path / "c"))
    assert _texts(corpus) == ["in side", "two\nlines", "json text"]


# ------------------------------------------------------------------- 4. invalid UTF-8 in a .jsonl


def test_invalid_utf8_in_jsonl_is_a_counted_skip(tmp_path):
    content = b'{"text": "good"}\n{"text": "bad \xff\xfe bytes"}\n{"text": "also good", "other": "\xc3"}\n'
    corpus, stats = _load(tmp_path, "mixed.jsonl.gz", content)
    assert _texts(corpus) == ["good", "also good"]  # bad bytes in another field do not matter
    assert (stats.read, stats.kept, stats.skipped_non_utf8, stats.skipped_blank) == (3, 2, 1, 0)


def test_lone_surrogate_escape_in_jsonl_is_a_counted_skip(tmp_path):
    corpus, stats = _load(tmp_path, "surrogate.jsonl", b'{"text": "ok"}\n{"text": "half \\ud800 pair"}\n')
    assert _texts(corpus) == ["ok"] and stats.skipped_non_utf8 == 1


# ------------------------------------------------------------------ 5. non-string .jsonl text field


@pytest.mark.parametrize("value, kind", [("42", "a number"), ("3.5", "a number"), ("true", "a boolean"),
                                         ('["a"]', "a list"), ('{"a": 1}', "an object")])
def test_non_string_text_field_names_file_line_and_field(tmp_path, value, kind):
    content = f'{{"text": "fine"}}\n\n{{"id": 7, "body": {value}}}\n'.encode()
    with pytest.raises(CorpusFileError, match=rf"numbers\.jsonl, line 3: field 'body' holds {kind} .*not a string"):
        _load(tmp_path, "numbers.jsonl", content, text_column="body")


def test_null_or_missing_text_field_is_a_counted_blank(tmp_path):
    content = b'{"text": "kept"}\n{"text": null}\n{"other": "no text field"}\n'
    corpus, stats = _load(tmp_path, "nulls.jsonl", content)
    assert _texts(corpus) == ["kept"] and (stats.read, stats.skipped_blank) == (3, 2)


def test_jsonl_errors_name_the_line(tmp_path):
    with pytest.raises(CorpusFileError, match=r"broken\.jsonl, line 2 is not valid JSON"):
        _load(tmp_path, "broken.jsonl", b'{"text": "a"}\n{"text": "b"\n')
    with pytest.raises(CorpusFileError, match=r"nofield\.jsonl has no column 'text'; columns: \['body'\]"):
        _load(tmp_path, "nofield.jsonl", b'{"body": "a"}\n')


def test_json_array_file_and_numbers_in_it(tmp_path):
    corpus, _ = _load(tmp_path, "array.json", json.dumps([{"text": "one"}, {"text": "two"}]).encode())
    assert _texts(corpus) == ["one", "two"]
    with pytest.raises(CorpusFileError, match=r"bad\.json, record 2 of the JSON array: field 'text' holds a number"):
        _load(tmp_path, "bad.json", b'[{"text": "one"}, {"text": 2}]')


# --------------------------------------------------------------------------- 6. BOM in a CSV header


@pytest.mark.parametrize("name, content", [
    ("excel.csv", "\ufefftext,label\r\nhello,1\r\n\"a, b\",2\r\n".encode()),
    ("excel.tsv.gz", "\ufefftext\tlabel\nhello\t1\na, b\t2\n".encode()),
])
def test_byte_order_mark_in_header_is_ignored(tmp_path, name, content):
    corpus, stats = _load(tmp_path, name, content)
    assert _texts(corpus) == ["hello", "a, b"] and stats.kept == 2


# -------------------------------------------------------------------------------- 7. ragged rows


@pytest.mark.parametrize("name, content, message", [
    ("more.csv", b"text,label\nfine,1\nhello, world,2\n", r"more\.csv, line 3: 3 fields where the header has 2"),
    ("fewer.csv", b"text,label\nfine,1\n\"quoted\nacross lines\",2\nno label\n",
     r"fewer\.csv, line 5: 1 field where the header has 2 \(text, label\)"),
    ("fewer.tsv.gz", b"label\ttext\n1\tfine\n2\n3\tok\n", r"fewer\.tsv\.gz, line 3: 1 field where the header has 2"),
    ("tab.tsv", b"label\ttext\n1\ta text\twith a tab\n", r"tab\.tsv, line 2: 3 fields .*may not contain a tab"),
])
def test_ragged_row_names_file_and_line(tmp_path, name, content, message):
    with pytest.raises(CorpusFileError, match=message):
        _load(tmp_path, name, content)


def test_rows_are_checked_once_per_version_of_the_file(tmp_path, monkeypatch):
    corpus, _ = _load(tmp_path, "fine.tsv", b"label\ttext\n1\tone\n2\ttwo\n")
    assert _texts(corpus) == ["one", "two"]
    checked = []
    monkeypatch.setattr(corpus_module, "_check_rows", lambda *args: checked.append(args))
    corpus, _ = load_corpus([str(tmp_path / "fine.tsv")], cache_dir=str(tmp_path / "cache"))
    assert _texts(corpus) == ["one", "two"] and not checked  # read from the cache built after the check
    monkeypatch.undo()
    with pytest.raises(CorpusFileError, match=r"fine\.tsv, line 3: 1 field"):  # an edited file is checked again
        _load(tmp_path, "fine.tsv", b"label\ttext\n1\tone\n2\n")


# ---------------------------------------------------------------------------- 8. header-only table


@pytest.mark.parametrize("name, content", [("empty.csv", b"text,label\n"), ("empty.tsv.gz", b"text\n\n")])
def test_header_only_table_is_an_error(tmp_path, name, content):
    with pytest.raises(CorpusFileError, match=rf"{name.replace('.', '[.]')} holds a header \(.*\) but no rows"):
        _load(tmp_path, name, content)


def test_header_only_file_among_good_ones_is_still_an_error(tmp_path):
    (tmp_path / "good.txt").write_text("a text\n")
    (tmp_path / "empty.csv").write_text("text\n")
    with pytest.raises(CorpusFileError, match=r"empty\.csv holds a header"):
        load_corpus([str(tmp_path / "good.txt"), str(tmp_path / "empty.csv")], cache_dir=str(tmp_path / "c"))


# ---------------------------------------------------------------------- 9. mislabelled / truncated .gz


@pytest.mark.parametrize("name", ["plain.txt.gz", "plain.tsv.gz", "plain.jsonl.gz"])
def test_mislabelled_gz_names_the_file(tmp_path, name):
    (tmp_path / name).write_bytes(b'text\n{"text": "not compressed"}\n')
    with pytest.raises(CorpusFileError, match=rf"{name.replace('.', '[.]')} ends in .gz but is not gzip data"):
        load_corpus([str(tmp_path / name)], cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize("name, rows", [
    ("cut.txt.gz", (b"line number %d of the corpus\n" % i for i in range(20000))),
    ("cut.tsv.gz", (b"text\n", *(b"row %d\n" % i for i in range(20000)))),
    ("cut.csv.gz", (b"text\n", *(b"row %d\n" % i for i in range(20))),),
    ("cut.jsonl.gz", (b'{"text": "record %d"}\n' % i for i in range(20000))),
])
def test_truncated_gz_names_the_file(tmp_path, name, rows):
    data = gzip.compress(b"".join(rows))
    (tmp_path / name).write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(CorpusFileError, match=rf"{name.replace('.', '[.]')} is not complete gzip data .*truncated"):
        load_corpus([str(tmp_path / name)], cache_dir=str(tmp_path / "cache"))
