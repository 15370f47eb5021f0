"""Walking an input folder on real folders with real links: loops and links out are listing error rows, a link
to a hidden place is followed once, hard links are plain files, a folder too deep is one row; nothing multiplies.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.job.folder_walk import MAX_DEPTH, walk
from pipeline.job.listing import list_inputs


def _files(root: Path, rels: list[str]) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode())


def _rows(listing) -> dict[str, str]:
    return {e.key: e.error_type for e in listing.errors}


def test_the_reported_folder_lists_each_photo_once(tmp_path):
    """`ln -s .. cats/up` (8 photos became 288 inputs, dogs labelled cats) and two symlink loops."""
    root = tmp_path / "in"
    _files(root, [f"{c}/{i}.jpg" for c in ("cats", "dogs") for i in range(4)])
    os.symlink("..", root / "cats" / "up")
    os.symlink("loop_b", root / "dogs" / "loop_a")  # a loop of two links
    os.symlink("loop_a", root / "dogs" / "loop_b")
    os.symlink(".", root / "dogs" / "self")  # a link to the folder holding it
    listing = list_inputs(str(root))
    assert {i.key: i.label for i in listing.items} == {
        f"{c}/{i}.jpg": n for n, c in enumerate(("cats", "dogs")) for i in range(4)
    }
    assert _rows(listing) == {
        "cats/up": "SymlinkLoop",
        "dogs/loop_a": "SymlinkLoop",
        "dogs/loop_b": "SymlinkLoop",
        "dogs/self": "SymlinkLoop",
    }
    up = next(e for e in listing.errors if e.key == "cats/up")
    assert up.message == ("a symbolic link to the input folder, a folder that holds it; not followed (it would repeat)")
    assert listing.listed["train"] == 8 + 4  # every photo once, every link one row


def test_links_out_of_the_root_to_listed_files_and_to_hidden_places(tmp_path):
    root, outside = tmp_path / "in", tmp_path / "elsewhere"
    _files(outside, ["x.jpg", "sub/y.jpg"])
    _files(root, ["cats/1.jpg", "dogs/2.jpg", ".stash/s.jpg", ".stash/deeper/t.jpg", ".one.jpg"])
    os.symlink(outside / "x.jpg", root / "cats" / "out.jpg")
    os.symlink(outside / "sub", root / "cats" / "out_folder")
    os.symlink("../dogs/2.jpg", root / "cats" / "same.jpg")  # listed under its own name
    os.symlink("../dogs", root / "cats" / "dogs_again")
    os.symlink("../.stash", root / "cats" / "stash")  # hidden: followed, once
    os.symlink("../.stash/deeper", root / "cats" / "stash_again")  # reached already through `stash`
    os.symlink("../.one.jpg", root / "dogs" / "one.jpg")  # a hidden file: read as that file
    os.symlink("../../cats", root / ".stash" / "deeper" / "back")  # inside the followed folder, back to cats
    os.symlink("nowhere.jpg", root / "dogs" / "broken.jpg")  # listed: reading it says it points nowhere
    os.symlink(outside, root / "outside")  # a top-level link out: one row, not a class folder
    listing = list_inputs(str(root))
    assert sorted(i.key for i in listing.items) == [
        "cats/1.jpg",
        "cats/stash/deeper/t.jpg",
        "cats/stash/s.jpg",
        "dogs/2.jpg",
        "dogs/broken.jpg",
        "dogs/one.jpg",
    ]
    assert listing.classes == ["cats", "dogs"]
    assert _rows(listing) == {
        "cats/out.jpg": "SymlinkOutsideRoot",
        "cats/out_folder": "SymlinkOutsideRoot",
        "cats/same.jpg": "DuplicateInput",
        "cats/dogs_again": "DuplicateInput",
        "cats/stash_again": "DuplicateInput",
        "cats/stash/deeper/back": "DuplicateInput",
        "outside": "SymlinkOutsideRoot",
    }
    messages = {e.key: e.message for e in listing.errors}
    assert messages["cats/same.jpg"].startswith("a symbolic link to 'dogs/2.jpg', which is listed under its own name")
    assert f"(to {outside / 'x.jpg'})" in messages["cats/out.jpg"] and "listing file" in messages["cats/out.jpg"]
    assert "reaches '.stash/deeper' again" in messages["cats/stash_again"]


def test_hard_links_are_two_inputs_not_a_loop(tmp_path):
    root = tmp_path / "in"
    _files(root, ["cats/a.jpg", "dogs/b.jpg"])
    os.link(root / "cats" / "a.jpg", root / "cats" / "a_again.jpg")
    os.link(root / "cats" / "a.jpg", root / "dogs" / "a_as_dog.jpg")
    listing = list_inputs(str(root))
    assert {i.key: i.label for i in listing.items} == {
        "cats/a.jpg": 0,
        "cats/a_again.jpg": 0,
        "dogs/a_as_dog.jpg": 1,
        "dogs/b.jpg": 1,
    }
    assert not listing.errors


def test_a_folder_too_deep_is_one_row_naming_it(tmp_path):
    root = tmp_path / "in"
    deep = root / "cats" / Path(*["d"] * (MAX_DEPTH + 5))
    _files(root, ["cats/top.jpg", str((deep / "lost.jpg").relative_to(root))])
    at_bound = root / "dogs" / Path(*["d"] * (MAX_DEPTH - 1))  # its files are MAX_DEPTH folders down: listed
    _files(root, [str((at_bound / "kept.jpg").relative_to(root))])
    listing = list_inputs(str(root))
    assert sorted(i.key for i in listing.items) == ["cats/top.jpg", str((at_bound / "kept.jpg").relative_to(root))]
    (row,) = listing.errors
    assert row.key == "cats/" + "/".join(["d"] * MAX_DEPTH) and row.error_type == "TooDeep"
    assert row.message == (
        f"a folder more than {MAX_DEPTH} levels below the input folder; its files are not listed: move them up"
    )


def test_a_deep_chain_of_links_stops_at_the_bound(tmp_path):
    """Links that each reach a new hidden folder: every one followed once, and the depth bound still holds."""
    root = tmp_path / "in"
    _files(root, ["cats/a.jpg"])
    hidden = root / ".chain"
    for i in range(MAX_DEPTH + 10):
        (hidden / str(i)).mkdir(parents=True)
        os.symlink(f"../{i + 1}", hidden / str(i) / "next")
    (hidden / str(MAX_DEPTH + 10)).mkdir()
    os.symlink("../.chain/0", root / "cats" / "chain")
    found = walk(str(root), str(root / "cats"), max_depth=8)
    refused = [f for f in found if f.refused is not None]
    assert [f.path for f in found if f.refused is None] == [str(root / "cats" / "a.jpg")]
    assert len(refused) == 1 and refused[0].refused.error_type == "TooDeep"
    assert refused[0].path == str(root / "cats" / Path("chain", *["next"] * 7))


def test_plain_folders_walk_as_before(tmp_path):
    """Without links the walk lists what `os.walk` did (hidden names aside, which the listing always dropped)."""
    root = tmp_path / "in"
    _files(root, ["cats/b.jpg", "cats/a b/ü.png", "cats/z/y/x.jpg", "cats/.hidden/h.jpg", "cats/.h.jpg", "cats/A.jpg"])
    expected = sorted(
        os.path.join(folder, name)
        for folder, _dirs, names in os.walk(root / "cats")
        for name in names
        if ".h" not in os.path.join(folder, name)
    )
    assert [f.path for f in walk(str(root), str(root / "cats"))] == expected
    assert all(f.refused is None for f in walk(str(root), str(root / "cats")))
