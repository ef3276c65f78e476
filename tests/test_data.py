"""Dataset loaders: real file layouts in tiny fixtures, class-disjoint splits, transforms,
the embedded Omniglot copy cross-checked against the shared zips, and the pack script."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat
from torch.utils.data import DataLoader
from torchvision import transforms as T

from losszoo.data import (
    DATASETS,
    ArrayImageDataset,
    Augmentation,
    ImageInputSpec,
    contiguous_labels,
    get_dataset_spec,
    list_datasets,
    load_split,
    register_dataset,
)
from losszoo.data import omniglot as omniglot_module
from losszoo.data.base import ImageListing, ZipImageReader
from losszoo.data.pack_omniglot import downsample, pack
from losszoo.data.pack_omniglot import main as pack_main
from losszoo.data.transforms import TensorTransform, build_transform

# ../shared/ beside the checkout (CI, the main checkout), or further up (a git worktree).
SHARED_OMNIGLOT = next(
    (found for parent in Path(__file__).resolve().parents[1].parents
     if (found := parent / "shared" / "datasets" / "omniglot").is_dir()),
    Path("shared-datasets-not-found"),
)
needs_shared_zips = pytest.mark.skipif(
    not (SHARED_OMNIGLOT / "images_background.zip").is_file(), reason="shared Omniglot zips not available"
)

SMALL_RGB = ImageInputSpec(channels=3, image_size=12, resize=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture
def dataset_registry():
    with DATASETS.scoped() as registry:
        yield registry


def _image(path: Path, seed: int, size=(20, 14), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).convert(mode).save(path)
    return path


def _check_split(dataset, expected_len: int, expected_classes: int, spec=SMALL_RGB):
    assert len(dataset) == expected_len
    assert dataset.num_classes == expected_classes
    assert dataset.labels.dtype == torch.long and dataset.labels.shape == (expected_len,)
    assert torch.equal(dataset.labels.unique(), torch.arange(expected_classes))
    image, label = dataset[len(dataset) - 1]
    assert image.shape == (spec.channels, spec.image_size, spec.image_size)
    assert image.dtype == torch.float32
    assert label == int(dataset.labels[-1])


def _raw_ids(dataset) -> set:
    return {dataset.classes[label] for label in dataset.labels.tolist()}


# --------------------------------------------------------------------------------- registry --
def test_registry_lists_the_datasets_and_resolves_aliases():
    assert {"cub200", "cars196", "sop", "inshop", "omniglot", "imagefolder"} <= set(list_datasets())
    assert list_datasets("c*") == ["cars196", "cub200"]
    assert get_dataset_spec("cub") is get_dataset_spec("cub200")
    assert get_dataset_spec("inshop").splits == ("train", "query", "gallery")
    assert get_dataset_spec("omniglot").augmentation == Augmentation(horizontal_flip=False, crop_padding=2)


def test_load_split_rejects_unknown_names_splits_options_and_specs():
    with pytest.raises(KeyError, match="omniglot"):
        load_split("omniglott", "train")
    with pytest.raises(ValueError, match="splits: train, test"):
        load_split("omniglot", "query")
    with pytest.raises(TypeError, match="accepted: download"):
        load_split("omniglot", "train", colour=True)
    with pytest.raises(TypeError, match="lacks resize"):
        load_split(
            "omniglot", "train", input_spec=SimpleNamespace(channels=1, image_size=28, mean=(0,), std=(1,))
        )
    with pytest.raises(ValueError, match="channels"):
        load_split("omniglot", "train", input_spec=ImageInputSpec(channels=2, mean=(0, 0), std=(1, 1)))


def test_register_dataset_is_scoped_and_feeds_the_loader_options(dataset_registry, tmp_path):
    paths = [_image(tmp_path / f"{i}.png", i) for i in range(4)]

    @register_dataset("toyset", aliases=("toy",))
    def load_toy(root, split, repeat: int = 1):
        """A toy set."""
        return ImageListing(paths * repeat, ["b", "a", "b", "c"] * repeat)

    dataset = load_split("toy", "train", input_spec=SMALL_RGB, repeat=2)
    assert len(dataset) == 8 and dataset.classes == ["a", "b", "c"]
    assert dataset.labels.tolist() == [1, 0, 1, 2] * 2
    assert get_dataset_spec("toyset").description == "A toy set."
    with pytest.raises(TypeError, match="need defaults"):
        register_dataset("broken")(lambda root, split, size: None)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("toyset")(load_toy)


def test_scoped_registry_does_not_leak():
    assert "toyset" not in list_datasets()


def test_contiguous_labels_sorted_and_with_a_fixed_label_space():
    labels, classes = contiguous_labels([30, 10, 20, 10])
    assert labels.tolist() == [2, 0, 1, 0] and classes == [10, 20, 30]
    labels, classes = contiguous_labels(["y"], classes=["x", "y", "z"])
    assert labels.tolist() == [1] and classes == ["x", "y", "z"]
    with pytest.raises(ValueError, match="not among"):
        contiguous_labels(["w"], classes=["x"])


# ------------------------------------------------------------------------------- transforms --
def test_paper_transforms_resize_crop_flip_normalize():
    """Test: resize to 256x256 then centre crop 224 (paper Sec. 4.1), compared with a by-hand
    PIL resize + numpy crop; train: random crop + mirroring, both seen over a few draws."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8))
    spec = ImageInputSpec()
    test_tensor = build_transform(spec, train=False)(image)
    resized = np.asarray(image.resize((256, 256), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    expected = (resized[16:240, 16:240] - np.array(spec.mean)) / np.array(spec.std)
    assert test_tensor.shape == (3, 224, 224)
    torch.testing.assert_close(
        test_tensor, torch.from_numpy(expected.transpose(2, 0, 1)).float(), atol=1e-5, rtol=0
    )

    # train: the same steps at a small size so every crop window can be searched
    small = ImageInputSpec(channels=3, image_size=12, resize=16, mean=spec.mean, std=spec.std)
    train = build_transform(small, train=True)
    resized = np.asarray(image.resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    full = (
        torch.from_numpy(resized.transpose(2, 0, 1)) - torch.tensor(spec.mean).view(3, 1, 1)
    ) / torch.tensor(spec.std).view(3, 1, 1)
    flips, offsets = set(), set()
    for seed in range(12):
        torch.manual_seed(seed)
        crop = train(image)
        assert crop.shape == (3, 12, 12)
        for flipped in (False, True):  # the crop must be some 12x12 window of the (flipped) image
            source = full.flip(-1) if flipped else full
            windows = source.unfold(1, 12, 1).unfold(2, 12, 1)
            match = (windows - crop[:, None, None]).abs().amax(dim=(0, 3, 4)) < 1e-4
            if match.any():
                flips.add(flipped)
                offsets.add(tuple(match.nonzero()[0].tolist()))
    assert len(offsets) > 1
    assert flips == {False, True}


def test_tensor_transform_matches_torchvision_draw_for_draw():
    """The PIL-free pipeline equals torchvision's RandomCrop(padding)+RandomHorizontalFlip /
    CenterCrop + Normalize on the same random stream."""
    spec = ImageInputSpec(channels=1, image_size=24, resize=28, mean=(0.1,), std=(0.3,))
    image = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (1, 28, 28), dtype=np.uint8))
    as_float = image.float() / 255
    for train in (False, True):
        augmentation = Augmentation(horizontal_flip=True, crop_padding=2)
        ours = TensorTransform(spec, train=train, augmentation=augmentation)
        steps = [T.RandomCrop(24, padding=2), T.RandomHorizontalFlip()] if train else [T.CenterCrop(24)]
        reference = T.Compose([*steps, T.Normalize(spec.mean, spec.std)])
        for seed in range(8):
            torch.manual_seed(seed)
            got = ours(image)
            torch.manual_seed(seed)
            torch.testing.assert_close(got, reference(as_float), atol=1e-5, rtol=0)


def test_array_dataset_tensor_path_equals_pil_path():
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    rgb = rng.integers(0, 256, (5, 28, 28, 3), dtype=np.uint8)
    for images in (grey, rgb):
        for channels in (1, 3):
            spec = ImageInputSpec(
                channels=channels, image_size=24, resize=28, mean=(0.2,) * channels, std=(0.5,) * channels
            )
            fast = ArrayImageDataset(images, list(range(5)), spec)
            assert fast.tensor_path
            mode = "L" if channels == 1 else "RGB"
            transform = build_transform(spec, train=False)
            for index in range(5):
                reference = transform(Image.fromarray(images[index]).convert(mode))
                torch.testing.assert_close(fast[index][0], reference, atol=2.5 / 255 / 0.5, rtol=0)
    slow = ArrayImageDataset(grey, list(range(5)), SMALL_RGB)  # 28 != resize 16: goes through PIL
    assert not slow.tensor_path and slow[0][0].shape == (3, 12, 12)


# ---------------------------------------------------------------------------- CUB-200-2011 --
def _make_cub(root: Path, classes=(1, 2, 100, 101, 150, 200), per_class=3) -> tuple[int, int]:
    folder = root / "CUB_200_2011"
    image_lines, label_lines, counts = [], [], [0, 0]
    image_id = 0
    for class_id in classes:
        for k in range(per_class + (class_id % 2)):
            image_id += 1
            relative = f"{class_id:03d}.Bird_{class_id}/Bird_{class_id}_{k}.jpg"
            _image(folder / "images" / relative, image_id)
            image_lines.append(f"{image_id} {relative}")
            label_lines.append(f"{image_id} {class_id}")
            counts[class_id > 100] += 1
    (folder / "images.txt").write_text("\n".join(image_lines) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(label_lines) + "\n")
    return counts[0], counts[1]


def test_cub200_split_and_layout(tmp_path):
    n_train, n_test = _make_cub(tmp_path)
    train = load_split("cub200", "train", root=tmp_path, input_spec=SMALL_RGB, train=True)
    test = load_split("cub200", "test", root=tmp_path / "CUB_200_2011", input_spec=SMALL_RGB)
    _check_split(train, n_train, 3)
    _check_split(test, n_test, 3)
    assert _raw_ids(train) == {1, 2, 100} and _raw_ids(test) == {101, 150, 200}
    # labels follow the sorted class ids, checked by reading the class folder back from the path
    for path, label in zip(test.paths, test.labels.tolist(), strict=True):
        assert int(Path(path).parent.name[:3]) == test.classes[label]
    default = load_split("cub", "test", root=tmp_path)  # paper defaults: 256 -> 224, RGB
    assert default[0][0].shape == (3, 224, 224)


def test_cub200_missing_and_partial_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*images\.txt.*CUB_200_2011/.*caltech"):
        load_split("cub200", "train", root=tmp_path / "nowhere")
    _make_cub(tmp_path)
    folder = tmp_path / "CUB_200_2011"
    (folder / "image_class_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match=f"incomplete in {folder}: missing image_class_labels.txt"):
        load_split("cub200", "train", root=tmp_path)
    _make_cub(tmp_path)
    missing = next((folder / "images" / "001.Bird_1").glob("*.jpg"))
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=f"1 image.*missing: {missing}"):
        load_split("cub200", "train", root=tmp_path)


def test_cub200_list_in_another_format_names_the_file_and_line(tmp_path):
    _make_cub(tmp_path)
    labels = tmp_path / "CUB_200_2011" / "image_class_labels.txt"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join(lines[:2] + [line.replace(" ", ", ") for line in lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=rf"{labels}:3: expected '<image_id> <class id>' separated by a space"):
        load_split("cub200", "train", root=tmp_path)
    images = tmp_path / "CUB_200_2011" / "images.txt"
    images.write_text(images.read_text().replace(" ", ",", 1))
    with pytest.raises(ValueError, match=rf"{images}:1: expected"):
        load_split("cub200", "train", root=tmp_path)
    from losszoo.cli.main import main  # the command line: one line naming the file, exit 2

    assert main(["train", "--dataset", "cub200", "--data-root", str(tmp_path), "--backbone", "convnet4",
                 "--output", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------- CARS196 --
def _make_cars(root: Path, classes=(1, 5, 98, 99, 120, 196), per_class=2) -> tuple[int, int]:
    """cars_annos.mat as Stanford ships it: a 1xN struct array 'annotations' (+ 'class_names')."""
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    rows, counts = [], [0, 0]
    for class_id in classes:
        for k in range(per_class):
            number = len(rows) + 1
            relative = f"car_ims/{number:06d}.jpg"
            _image(root / relative, number)
            # the file's own test flag is a classification split; it must be ignored
            rows.append((relative, 1, 2, 10, 8, np.uint8(class_id), np.uint8((number + k) % 2)))
            counts[class_id > 98] += 1
    annotations = np.empty((1, len(rows)), dtype=[(name, object) for name in fields])
    for index, row in enumerate(rows):
        annotations[0, index] = tuple(
            np.array([[value]]) if not isinstance(value, str) else np.array([value]) for value in row
        )
    class_names = np.empty((1, 196), dtype=object)
    for index in range(196):
        class_names[0, index] = np.array([f"Car model {index + 1}"])
    savemat(root / "cars_annos.mat", {"annotations": annotations, "class_names": class_names})
    return counts[0], counts[1]


def test_cars196_split_from_a_real_mat_structure(tmp_path):
    n_train, n_test = _make_cars(tmp_path)
    train = load_split("cars196", "train", root=tmp_path, input_spec=SMALL_RGB, train=True)
    test = load_split("cars", "test", root=tmp_path, input_spec=SMALL_RGB)
    _check_split(train, n_train, 3)
    _check_split(test, n_test, 3)
    assert _raw_ids(train) == {1, 5, 98} and _raw_ids(test) == {99, 120, 196}
    assert [Path(p).name for p in train.paths] == [f"{i:06d}.jpg" for i in range(1, n_train + 1)]


def test_cars196_missing_images_folder(tmp_path):
    _make_cars(tmp_path)
    for path in (tmp_path / "car_ims").iterdir():
        path.unlink()
    (tmp_path / "car_ims").rmdir()
    with pytest.raises(FileNotFoundError, match=f"incomplete in {tmp_path}: missing car_ims/.*stanford"):
        load_split("cars196", "train", root=tmp_path)


# ------------------------------------------------------------------ Stanford Online Products --
def _make_sop(root: Path) -> dict[str, list[int]]:
    folder = root / "Stanford_Online_Products"
    layout = {"train": [1, 1, 2, 3, 3, 3], "test": [4, 4, 5, 6, 6]}
    image_id = 0
    for split, class_ids in layout.items():
        lines = ["image_id class_id super_class_id path"]
        for class_id in class_ids:
            image_id += 1
            relative = f"bicycle_final/{100 + class_id}_{image_id}.JPG"
            _image(folder / relative, image_id, mode="RGB")
            lines.append(f"{image_id} {class_id} 1 {relative}")
        (folder / f"Ebay_{split}.txt").write_text("\n".join(lines) + "\n")
    return layout


def test_sop_split(tmp_path, monkeypatch):
    layout = _make_sop(tmp_path)
    monkeypatch.setenv("LOSSZOO_DATA", str(tmp_path))  # root=None looks under $LOSSZOO_DATA
    train = load_split("sop", "train", input_spec=SMALL_RGB, train=True)
    test = load_split("sop", "test", root=tmp_path, input_spec=SMALL_RGB)
    _check_split(train, 6, 3)
    _check_split(test, 5, 3)
    assert train.labels.tolist() == [0, 0, 1, 2, 2, 2]
    assert [test.classes[label] for label in test.labels.tolist()] == layout["test"]
    assert not _raw_ids(train) & _raw_ids(test)


def test_sop_missing_list_file(tmp_path):
    _make_sop(tmp_path)
    (tmp_path / "Stanford_Online_Products" / "Ebay_test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing Ebay_test.txt"):
        load_split("sop", "train", root=tmp_path)


# ---------------------------------------------------------------------------------- In-Shop --
def _make_inshop(root: Path) -> list[tuple[str, str, str]]:
    rows = [
        ("id_00000001", "train", 3), ("id_00000003", "train", 2),
        ("id_00000002", "query", 2), ("id_00000002", "gallery", 1),
        ("id_00000005", "query", 1), ("id_00000005", "gallery", 2),
        ("id_00000007", "gallery", 1),  # an item only in the gallery
    ]  # fmt: skip
    lines, entries = [], []
    for item, status, count in rows:
        for k in range(count):
            name = f"img/WOMEN/Dresses/{item}/{k:02d}_{status}_front.jpg"
            _image(root / name, len(entries))
            lines.append(f"{name:<70} {item} {status}")
            entries.append((name, item, status))
    partition = root / "Eval" / "list_eval_partition.txt"
    partition.parent.mkdir(parents=True)
    partition.write_text(f"{len(entries)}\nimage_name item_id evaluation_status\n" + "\n".join(lines) + "\n")
    return entries


def test_inshop_splits_share_item_labels_across_query_and_gallery(tmp_path):
    entries = _make_inshop(tmp_path)
    train = load_split("inshop", "train", root=tmp_path, input_spec=SMALL_RGB, train=True)
    query = load_split("inshop", "query", root=tmp_path, input_spec=SMALL_RGB)
    gallery = load_split("inshop", "gallery", root=tmp_path, input_spec=SMALL_RGB)
    _check_split(train, 5, 2)
    assert len(query) == 3 and len(gallery) == 4
    assert query.classes == gallery.classes == ["id_00000002", "id_00000005", "id_00000007"]
    assert query.num_classes == gallery.num_classes == 3
    item_of = {name: item for name, item, _ in entries}
    for dataset in (query, gallery):  # same item <-> same label, independent of the split
        for path, label in zip(dataset.paths, dataset.labels.tolist(), strict=True):
            assert dataset.classes[label] == item_of[str(Path(path).relative_to(tmp_path))]
    assert query[0][0].shape == (3, 12, 12)
    assert not _raw_ids(train) & (_raw_ids(query) | _raw_ids(gallery))


def test_inshop_truncated_partition_and_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Eval/list_eval_partition\.txt.*img/"):
        load_split("inshop", "train", root=tmp_path)
    _make_inshop(tmp_path)
    partition = tmp_path / "Eval" / "list_eval_partition.txt"
    partition.write_text("\n".join(partition.read_text().splitlines()[:-1]))
    with pytest.raises(ValueError, match="announces 12 images but lists 11"):
        load_split("inshop", "train", root=tmp_path)


# ------------------------------------------------------------------------------ imagefolder --
def test_imagefolder_class_disjoint_split(tmp_path):
    for class_index, name in enumerate(["delta", "alpha", "charlie", "bravo"]):
        for k in range(class_index + 1):
            _image(tmp_path / name / f"{k}.png", 10 * class_index + k)
    (tmp_path / "alpha" / "notes.txt").write_text("not an image")
    train = load_split("imagefolder", "train", root=tmp_path, input_spec=SMALL_RGB, train=True)
    test = load_split("imagefolder", "test", root=tmp_path, input_spec=SMALL_RGB)
    assert train.classes == ["alpha", "bravo"] and test.classes == ["charlie", "delta"]
    _check_split(train, 2 + 4, 2)  # alpha has 2 images, bravo 4
    _check_split(test, 3 + 1, 2)  # charlie 3, delta 1
    three_quarters = load_split(
        "imagefolder", "train", root=tmp_path, input_spec=SMALL_RGB, train_fraction=0.75
    )
    assert three_quarters.classes == ["alpha", "bravo", "charlie"]
    with pytest.raises(ValueError, match="train_fraction"):
        load_split("imagefolder", "train", root=tmp_path, train_fraction=1.0)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_split("imagefolder", "train", root=tmp_path / "nowhere")


# --------------------------------------------------------------------------------- Omniglot --
def _glyph(seed: int) -> Image.Image:
    """A 105x105 1-bit character image like Omniglot's: white paper, black strokes."""
    rng = np.random.default_rng(seed)
    paper = np.ones((105, 105), dtype=bool)
    for _ in range(3):
        row, col = rng.integers(10, 90, 2)
        paper[row : row + 4, col : col + rng.integers(10, 15)] = False
    return Image.fromarray(paper).convert("1")


_TINY_OMNIGLOT = {
    "images_background": {"Alpha": ["character01", "character02"], "Beta": ["character01"]},
    "images_evaluation": {"Gamma": ["character01", "character02"]},
}


def _make_omniglot_folders(root: Path, drawers=3) -> None:
    seed = 0
    for set_name, alphabets in _TINY_OMNIGLOT.items():
        for alphabet, characters in alphabets.items():
            for character in characters:
                for drawer in range(1, drawers + 1):
                    seed += 1
                    path = root / set_name / alphabet / character / f"{seed:04d}_{drawer:02d}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _glyph(seed).save(path)


def _zip_folders(root: Path, target: Path, reverse: bool = False) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for set_name in _TINY_OMNIGLOT:
        files = sorted((root / set_name).rglob("*.png"), reverse=reverse)
        with zipfile.ZipFile(target / f"{set_name}.zip", "w") as archive:
            for path in files:
                archive.write(path, path.relative_to(root).as_posix())


def test_omniglot_from_extracted_folders_and_zips_agree(tmp_path):
    _make_omniglot_folders(tmp_path / "folders")
    _zip_folders(tmp_path / "folders", tmp_path / "zips" / "omniglot", reverse=True)  # inside omniglot/
    for split, classes in (("train", 3), ("test", 2)):
        from_folder = load_split("omniglot", split, root=tmp_path / "folders", train=(split == "train"))
        from_zip = load_split("omniglot", split, root=tmp_path / "zips")
        _check_split(from_folder, classes * 3, classes, spec=omniglot_module.OMNIGLOT_INPUT_SPEC)
        assert from_folder.classes == from_zip.classes
        assert torch.equal(from_folder.labels, from_zip.labels)
        for index in range(len(from_zip)):
            assert torch.equal(
                load_split("omniglot", split, root=tmp_path / "folders")[index][0], from_zip[index][0]
            )
    train = load_split("omniglot", "train", root=tmp_path / "folders")
    assert train.classes == ["Alpha/character01", "Alpha/character02", "Beta/character01"]
    # ink is high: the mean pixel before normalization is the ink fraction, well under a half
    spec = omniglot_module.OMNIGLOT_INPUT_SPEC
    raw = train[0][0] * spec.std[0] + spec.mean[0]
    assert 0.0 < raw.mean() < 0.2


def test_omniglot_zip_reader_survives_pickling_for_workers(tmp_path):
    _make_omniglot_folders(tmp_path)
    _zip_folders(tmp_path, tmp_path / "zips")
    dataset = load_split("omniglot", "test", root=tmp_path / "zips")
    assert isinstance(dataset.reader, ZipImageReader)
    first = dataset[0][0]
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[0][0], first)


def test_omniglot_missing_files_and_failed_download(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=rf"images_background not found in {tmp_path}.*download=True"):
        load_split("omniglot", "train", root=tmp_path)

    def offline(url, root, filename=None, md5=None):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", offline)
    with pytest.raises(
        FileNotFoundError, match=rf"could not download .*images_evaluation\.zip.*into {tmp_path}"
    ):
        load_split("omniglot", "test", root=tmp_path, download=True)


@needs_shared_zips
def test_omniglot_from_the_shared_zips_reads_real_images():
    train = load_split("omniglot", "train", root=SHARED_OMNIGLOT, train=True)
    test = load_split("omniglot", "test", root=SHARED_OMNIGLOT)
    assert (len(train), train.num_classes, len(test), test.num_classes) == (19280, 964, 13180, 659)
    assert not set(train.classes) & set(test.classes)
    assert torch.equal(torch.bincount(train.labels), torch.full((964,), 20))
    loader = DataLoader(test, batch_size=4, sampler=[0, 1, 5000, 13179])
    images, labels = next(iter(loader))
    assert images.shape == (4, 1, 28, 28) and labels.tolist() == test.labels[[0, 1, 5000, 13179]].tolist()


# -------------------------------------------------------------------- embedded Omniglot copy --
def _box_downsample(image: np.ndarray, size: int) -> np.ndarray:
    """Box reduction written independently of PIL, with PIL's definition of its box filter:
    output pixel ``j`` is the mean of the source pixels whose centres lie in
    ``(j * n / size, (j + 1) * n / size]`` (3 or 4 of them for 105 -> 28)."""
    n = image.shape[0]
    centres = np.arange(n) + 0.5
    scale = n / size
    weights = np.array(
        [(centres > j * scale) & (centres <= (j + 1) * scale) for j in range(size)], dtype=float
    )
    weights /= weights.sum(1, keepdims=True)
    return weights @ image @ weights.T


def test_embedded_omniglot_sizes_splits_and_normalization():
    train, test = load_split("omniglot", "train"), load_split("omniglot", "test")
    assert (len(train), train.num_classes, len(test), test.num_classes) == (19280, 964, 13180, 659)
    assert torch.equal(torch.bincount(train.labels), torch.full((964,), 20))
    assert not set(train.classes) & set(test.classes)
    assert train[0][0].shape == (1, 28, 28)
    # the default spec's mean/std are those of the stored background images
    pixels = train.images.float() / 255
    spec = omniglot_module.OMNIGLOT_INPUT_SPEC
    assert abs(pixels.mean().item() - spec.mean[0]) < 1e-3 and abs(pixels.std().item() - spec.std[0]) < 1e-3
    batch = torch.stack([train[i][0] for i in range(0, 19280, 97)])
    assert abs(batch.mean().item()) < 0.15 and abs(batch.std().item() - 1) < 0.15
    # training items are shifted by at most 2 pixels and never mirrored
    augmented = load_split("omniglot", "train", train=True)
    plain = train.images[7, 0].float()
    for seed in range(6):
        torch.manual_seed(seed)
        shifted = augmented[7][0][0] * spec.std[0] + spec.mean[0]
        padded = torch.nn.functional.pad(plain, (2, 2, 2, 2)) / 255
        windows = padded.unfold(0, 28, 1).unfold(1, 28, 1)
        assert ((windows - shifted).abs().amax(dim=(2, 3)) < 1e-5).any()


@needs_shared_zips
def test_embedded_omniglot_matches_the_shared_zips():
    arrays = omniglot_module.load_embedded()
    for index, file_name in enumerate(arrays["source_files"]):
        digest = hashlib.sha256((SHARED_OMNIGLOT / str(file_name)).read_bytes()).hexdigest()
        assert arrays["source_sha256"][index] == digest
    for split, set_name in (("train", "images_background"), ("test", "images_evaluation")):
        embedded = load_split("omniglot", split)
        from_zip = load_split("omniglot", split, root=SHARED_OMNIGLOT)
        assert embedded.classes == from_zip.classes
        assert torch.equal(embedded.labels, from_zip.labels)
        in_split = arrays["class_set"][arrays["labels"]] == list(arrays["set_names"]).index(set_name)
        names = arrays["image_names"][in_split]
        with zipfile.ZipFile(SHARED_OMNIGLOT / f"{set_name}.zip") as archive:
            for index in (0, 1, 19, 20, 4321, len(embedded) - 1):
                member = from_zip.paths[index]
                assert member.endswith(f"{embedded.classes[embedded.labels[index]]}/{names[index]}.png")
                with Image.open(archive.open(member)) as image:
                    ink = 255.0 - np.asarray(image.convert("L"), dtype=np.float64)
                    stored = embedded.images[index, 0].numpy()
                    assert np.array_equal(stored, downsample(image))
                assert np.abs(stored - _box_downsample(ink, 28)).max() <= 1.0
                # and it is not merely similar to the other drawers of the same character
                sibling = embedded.images[index + (1 if index + 1 < len(embedded) else -1), 0].numpy()
                assert np.abs(sibling - _box_downsample(ink, 28)).max() > 1.0


# ------------------------------------------------------------------------------ pack script --
def test_pack_script_is_deterministic_and_faithful(tmp_path, capsys):
    _make_omniglot_folders(tmp_path / "folders")
    _zip_folders(tmp_path / "folders", tmp_path / "a")
    _zip_folders(tmp_path / "folders", tmp_path / "b", reverse=True)  # other member order, other bytes
    assert pack_main([str(tmp_path / "a"), "--output", str(tmp_path / "a.npz"), "--report"]) == 0
    assert "images_background: 3 classes, 9 images" in capsys.readouterr().out
    arrays = pack(tmp_path / "a", tmp_path / "a2.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "a2.npz").read_bytes()
    pack(tmp_path / "b", tmp_path / "b.npz")
    other = dict(np.load(tmp_path / "b.npz"))
    for key in ("images", "labels", "class_names", "class_set", "image_names"):
        assert np.array_equal(arrays[key], other[key]), key
    assert list(arrays["class_names"]) == [
        *("Alpha/character01", "Alpha/character02", "Beta/character01"),
        *("Gamma/character01", "Gamma/character02"),
    ]
    assert arrays["class_set"].tolist() == [0, 0, 0, 1, 1]
    first = (
        tmp_path
        / "folders"
        / "images_background"
        / "Alpha"
        / "character01"
        / f"{arrays['image_names'][0]}.png"
    )
    ink = 255.0 - np.asarray(Image.open(first).convert("L"), dtype=np.float64)
    assert np.abs(arrays["images"][0] - _box_downsample(ink, 28)).max() <= 1.0
    assert (
        arrays["source_sha256"][0]
        == hashlib.sha256((tmp_path / "a" / "images_background.zip").read_bytes()).hexdigest()
    )
    with pytest.raises(FileNotFoundError, match="images_evaluation.zip"):
        (tmp_path / "a" / "images_evaluation.zip").unlink()
        pack(tmp_path / "a", tmp_path / "c.npz")
