from app.core.detect import RACY_WINDOW_NS, ChangeDetector
from app.models import KnownDocument, Listing, SourceItem

OLD = 1_000_000_000_000_000_000  # an mtime long before any scan below
SCAN = OLD + 10 * RACY_WINDOW_NS


def item(name, token="t1", size=10, mtime=OLD):
    return SourceItem(f"/r/{name}", f"file:///r/{name}", name, size, mtime, token, f"/r/{name}")


def known(name, token="t1", content="h1", status="indexed", size=10):
    return KnownDocument(f"s:/r/{name}", f"/r/{name}", token, content, status, size, SCAN)


class Hasher:
    def __init__(self, hashes):
        self.hashes = hashes
        self.calls = []

    def __call__(self, it):
        self.calls.append(it.name)
        return self.hashes.get(it.name)


def diff(items, docs, hashes=None, roots=("/r",), problems=()):
    h = Hasher(hashes or {})
    cs = ChangeDetector(h).diff(Listing(tuple(items), roots, problems),
                                {d.native_id: d for d in docs})
    return cs, h


def test_unchanged_token_costs_no_hash():
    cs, h = diff([item("a")], [known("a")])
    assert cs.unchanged == 1 and cs.empty and h.calls == []


def test_touched_file_is_not_modified():
    cs, h = diff([item("a", token="t2")], [known("a")], {"a": "h1"})
    assert [d.doc_uid for _, d in cs.touched] == ["s:/r/a"] and not cs.modified
    assert h.calls == ["a"]


def test_modified_when_hash_differs():
    cs, _ = diff([item("a", token="t2")], [known("a")], {"a": "h2"})
    assert len(cs.modified) == 1 and not cs.touched


def test_racy_file_is_hashed_even_with_same_token():
    racy = item("a", mtime=SCAN - RACY_WINDOW_NS // 2)
    cs, h = diff([racy], [known("a")], {"a": "h2"})
    assert h.calls == ["a"] and len(cs.modified) == 1
    cs, _ = diff([racy], [known("a")], {"a": "h1"})
    assert cs.unchanged == 1 and cs.settled == ["s:/r/a"]


def test_deleted_and_added():
    cs, _ = diff([item("b")], [known("a")], {"b": "other"})
    assert [d.doc_uid for d in cs.deleted] == ["s:/r/a"]
    assert [i.name for i in cs.added] == ["b"]


def test_rename_detected_by_content_hash():
    cs, _ = diff([item("b")], [known("a", content="same")], {"b": "same"})
    assert [(i.name, d.doc_uid) for i, d in cs.moved] == [("b", "s:/r/a")]
    assert not cs.added and not cs.deleted


def test_rename_only_hashes_same_size_candidates():
    cs, h = diff([item("b", size=99)], [known("a", content="same", size=10)], {"b": "same"})
    assert h.calls == [] and len(cs.added) == 1 and len(cs.deleted) == 1


def test_missing_root_deletes_nothing():
    cs, _ = diff([], [known("a")], roots=())
    assert cs.deleted == [] and cs.empty


def test_unreadable_subfolder_deletes_nothing_under_it():
    doc = KnownDocument("s:/r/sub/x", "/r/sub/x", "t", "h", "indexed", 1, SCAN)
    cs, _ = diff([], [doc, known("a")], problems=(("/r/sub", "denied"),))
    assert [d.doc_uid for d in cs.deleted] == ["s:/r/a"]


def test_failed_file_not_retried_until_it_changes():
    cs, h = diff([item("a")], [known("a", status="failed")])
    assert cs.unchanged == 1 and h.calls == []
    cs, _ = diff([item("a", token="t9")], [known("a", status="failed")], {"a": "h1"})
    assert len(cs.modified) == 1  # same bytes but it failed before: try again after a change


def test_without_checksums_token_change_means_modified():
    cs = ChangeDetector(None).diff(Listing((item("a", token="t2"),), ("/r",)),
                                   {"/r/a": known("a")})
    assert len(cs.modified) == 1


def test_an_item_listed_twice_is_one_change():
    cs, _ = diff([item("b"), item("b"), item("a", token="t2"), item("a", token="t2")],
                 [known("a")], {"a": "h2"})
    assert [i.name for i in cs.added] == ["b"] and len(cs.modified) == 1
