"""Dataset lists and image folders that would silently give a wrong split, or read files outside
the data folder, are refused with one error naming the file and line (or the folder entry)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from losszoo.cli.main import main
from losszoo.data import load_split
from losszoo.errors import DataError
from test_data import SMALL_RGB, _image, _make_cars, _make_cub, _make_inshop, _make_sop


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


def _edit_line(path: Path, number: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = new
    path.write_text("\n".join(lines) + "\n")


# -------------------------------------------------------------------- paths leaving the root --
@pytest.mark.parametrize("listed", ["../../../outside/x.jpg", "/etc/passwd", "001.Bird_1/../../../x.jpg"])
def test_a_cub_path_outside_the_images_folder_is_refused(tmp_path, listed):
    _make_cub(tmp_path)
    images = tmp_path / "CUB_200_2011" / "images.txt"
    _edit_line(images, 2, f"2 {listed}")
    with pytest.raises(DataError, match=rf"{images}:2: path '{listed}' leaves .*images"):
        load_split("cub200", "train", root=tmp_path)


def test_a_symlink_out_of_the_data_folder_is_refused_on_the_command_line(tmp_path, capsys):
    _make_cub(tmp_path)
    outside = _image(tmp_path / "outside" / "x.jpg", 0)
    (tmp_path / "CUB_200_2011" / "images" / "escape").symlink_to(outside.parent)
    images = tmp_path / "CUB_200_2011" / "images.txt"
    _edit_line(images, 1, "1 escape/x.jpg")
    run = tmp_path / "run"
    assert main(["train", "--dataset", "cub200", "--data-root", str(tmp_path), "--backbone", "convnet4",
                 "--output", str(run)]) == 2
    assert f"{images}:1: path 'escape/x.jpg' leads outside" in _err(capsys)
    assert not run.exists()


def test_sop_inshop_and_cars_paths_stay_inside_their_folder(tmp_path):
    _make_sop(tmp_path / "sop")
    sop = tmp_path / "sop" / "Stanford_Online_Products" / "Ebay_train.txt"
    _edit_line(sop, 3, "2 1 1 ../../x.JPG")
    with pytest.raises(DataError, match=rf"{sop}:3: path '../../x.JPG' leaves"):
        load_split("sop", "train", root=tmp_path / "sop")
    _make_inshop(tmp_path / "inshop")
    partition = tmp_path / "inshop" / "Eval" / "list_eval_partition.txt"
    _edit_line(partition, 3, "/tmp/x.jpg id_00000001 train")
    with pytest.raises(DataError, match=rf"{partition}:3: path '/tmp/x.jpg' leaves"):
        load_split("inshop", "train", root=tmp_path / "inshop")
    _make_cars(tmp_path / "cars")
    mat = tmp_path / "cars" / "cars_annos.mat"
    content = loadmat(mat)
    content["annotations"][0, 1]["relative_im_path"] = np.array(["../x.jpg"])
    savemat(mat, {"annotations": content["annotations"], "class_names": content["class_names"]})
    with pytest.raises(DataError, match=rf"{mat} annotation 2: path '../x.jpg' leaves"):
        load_split("cars196", "train", root=tmp_path / "cars")


# --------------------------------------------------------------------------- label lists --
def test_cub_label_lists_that_would_give_a_wrong_split_name_file_and_line(tmp_path):
    folder = tmp_path / "CUB_200_2011"
    labels, images = folder / "image_class_labels.txt", folder / "images.txt"
    _make_cub(tmp_path)
    first_path = images.read_text().split()[1]
    cases = [  # (file, line, new text, message)
        (labels, 4, "3 2", "image id '3' is listed twice (also at line 3)"),  # the last would win
        (images, 2, f"2 {first_path}", f"image path '{first_path}' is listed twice (also at line 1)"),
        (labels, 2, "2 201", "class id 201 is out of range 1..200"),  # would join the test split
        (labels, 2, "2 x1", "expected '<image_id> <class id>'"),
    ]
    for path, number, text, message in cases:
        _make_cub(tmp_path)
        _edit_line(path, number, text)
        with pytest.raises(DataError, match=re.escape(f"{path}:{number}: {message}")):
            load_split("cub200", "test", root=tmp_path)


def test_a_list_file_that_is_not_utf8_names_the_line(tmp_path, capsys):
    _make_sop(tmp_path)
    listing = tmp_path / "Stanford_Online_Products" / "Ebay_test.txt"
    listing.write_bytes(listing.read_bytes().replace(b" 1 bicycle", b" 1 bicycl\xe9", 1))
    with pytest.raises(DataError, match=rf"{listing}:2: not UTF-8 text \(byte 0xe9\)"):
        load_split("sop", "test", root=tmp_path)


def test_sop_and_inshop_classes_cannot_be_in_two_splits(tmp_path):
    _make_sop(tmp_path / "sop")
    folder = tmp_path / "sop" / "Stanford_Online_Products"
    test_list = folder / "Ebay_test.txt"
    first = test_list.read_text().splitlines()[1].split()
    _edit_line(test_list, 2, f"{first[0]} 1 1 {first[3]}")  # class 1 is a training class
    with pytest.raises(DataError, match=rf"{test_list}:2: class id 1 is also listed in Ebay_train.txt"):
        load_split("sop", "test", root=tmp_path / "sop")
    _edit_line(test_list, 2, f"{first[0]} four 1 {first[3]}")
    with pytest.raises(DataError, match=rf"{test_list}:2: class_id must be an integer, got 'four'"):
        load_split("sop", "test", root=tmp_path / "sop")
    _make_inshop(tmp_path / "inshop")
    partition = tmp_path / "inshop" / "Eval" / "list_eval_partition.txt"
    name = partition.read_text().splitlines()[7].split()[0]  # a query image of item 2
    _edit_line(partition, 8, f"{name} id_00000001 query")
    with pytest.raises(DataError, match=rf"{partition}:8: item id_00000001 is also a training item"):
        load_split("inshop", "query", root=tmp_path / "inshop")


# ------------------------------------------------------------------------- image folders --
def _folder(root: Path, classes: int = 4, per_class: int = 2) -> Path:
    for c in range(classes):
        for k in range(per_class):
            _image(root / f"class{c:02d}" / f"{k}.png", 10 * c + k)
    return root


@pytest.mark.parametrize("link", ["..", ".", "../class03"])
def test_a_link_out_of_a_class_folder_or_a_loop_is_refused(tmp_path, capsys, link):
    """A link to the root, to itself or to a test class would pull images into the training
    classes (the issue's case: 20 images became 4,900, 800 of them from test classes)."""
    root = _folder(tmp_path / "images")
    (root / "class00" / "loop").symlink_to(link)
    with pytest.raises(DataError, match=rf"{root / 'class00' / 'loop'} (resolves outside|is .* again)"):
        load_split("imagefolder", "train", root=root)
    assert main(["check-data", "--dataset", "imagefolder", "--data-root", str(root)]) == 2
    assert "class00/loop" in _err(capsys)


def test_links_inside_a_class_are_followed_and_the_splits_stay_disjoint(tmp_path):
    root = _folder(tmp_path / "images")
    (root / "class00" / "more").mkdir()
    _image(root / "class00" / "more" / "2.png", 99)
    os.symlink(root / "class01" / "0.png", root / "class01" / "alias.png")  # the same image again
    with pytest.raises(DataError, match="alias.png is .*0.png again"):
        load_split("imagefolder", "train", root=root)
    (root / "class01" / "alias.png").unlink()
    (root / "class01" / "inner").symlink_to(root / "class00" / "more", target_is_directory=True)
    with pytest.raises(DataError, match="inner resolves outside its class folder"):
        load_split("imagefolder", "train", root=root)
    (root / "class01" / "inner").unlink()
    train = load_split("imagefolder", "train", root=root, input_spec=SMALL_RGB)
    test = load_split("imagefolder", "test", root=root, input_spec=SMALL_RGB)
    assert train.classes == ["class00", "class01"] and test.classes == ["class02", "class03"]
    assert len(train) == 5 and len(test) == 4


def test_hidden_entries_are_no_class_and_empty_class_folders_are_refused(tmp_path, capsys):
    root = _folder(tmp_path / "images")
    _image(root / ".git" / "objects" / "x.png", 1)  # a hidden folder is not a class
    _image(root / "class00" / ".thumbs" / "x.png", 2)  # nor are hidden images
    train = load_split("imagefolder", "train", root=root, input_spec=SMALL_RGB)
    assert train.classes == ["class00", "class01"] and len(train) == 4
    (root / "class01b").mkdir()  # empty: it would make class02 a training class
    with pytest.raises(DataError, match="class folder.* without images .*: class01b"):
        load_split("imagefolder", "test", root=root)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "imagefolder", "--data-root", str(root), "--output", str(run)]) == 2
    assert "class01b" in _err(capsys) and not run.exists()


def test_an_unreadable_test_image_fails_at_planning_not_after_training(tmp_path, capsys):
    root = _folder(tmp_path / "images")
    (root / "class03" / "1.png").write_bytes(b"not a png")
    run = tmp_path / "run"
    assert main(["train", "--dataset", "imagefolder", "--data-root", str(root), "--output", str(run)]) == 2
    err = _err(capsys)
    assert "(test split): 1 image(s) cannot be read" in err and "class03/1.png" in err
    assert not run.exists()
    assert main(["check-data", "--dataset", "imagefolder", "--data-root", str(root)]) == 1
    assert "class03/1.png" in capsys.readouterr().out


def test_a_decompression_bomb_is_a_bad_image_not_a_crash(tmp_path, capsys, monkeypatch):
    from PIL import Image

    root = _folder(tmp_path / "images")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a 20 x 14 image is then over 2x the limit
    assert main(["check-data", "--dataset", "imagefolder", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.count("exceeds limit") == 8  # every image reported, none crashed the command
    assert main(["train", "--dataset", "imagefolder", "--data-root", str(root), "--output", str(tmp_path / "r")]) == 2
    assert "exceeds limit" in _err(capsys) and not (tmp_path / "r").exists()


def test_one_image_per_class_is_refused_before_training(tmp_path, capsys):
    root = _folder(tmp_path / "images", classes=6, per_class=1)
    for c in range(3):
        _image(root / f"class{c:02d}" / "1.png", 100 + c)  # the training classes have two
    run = tmp_path / "run"
    assert main(["train", "--dataset", "imagefolder", "--data-root", str(root), "--output", str(run),
                 "--backbone", "convnet4", "--batch-size", "4", "--samples-per-class", "2"]) == 2
    assert "one image per class: no query has another image of its class" in _err(capsys)
    assert not run.exists()


def test_image_names_that_are_not_utf8_are_saved_with_the_embeddings(tmp_path):
    """Saving embeddings used to fail after the evaluation on a file name that is not UTF-8."""
    import numpy as np

    from losszoo.evaluation.evaluate import Neighbors
    from losszoo.training.embeddings import load_embeddings, save_embeddings
    from losszoo.training.inference import EvalArrays, EvalData

    root = _folder(tmp_path / "images")
    odd = os.fsdecode(bytes(root / "class02") + b"/caf\xe9.png")
    _image(Path(odd), 5)
    test = load_split("imagefolder", "test", root=root, input_spec=SMALL_RGB)
    n = len(test)
    arrays = EvalArrays(np.zeros((n, 2), np.float32), test.labels.numpy(),
                        Neighbors(np.zeros((n, 1), np.int64), np.zeros((n, 1), np.float32), "cosine"))
    save_embeddings(tmp_path / "out", arrays, EvalData(test))
    _, rows = load_embeddings(tmp_path / "out")
    assert odd in [row["path"] for row in rows] and Path(odd).is_file()
