"""The style picker's samples are made at build time: a first run renders none of them."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lumiku_local import catalog, style_samples
from lumiku_local.app import assets_dir
from lumiku_local.engines.dicebear import DiceBearEngine
from lumiku_local.web import pages

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = style_samples.folder(assets_dir())


@pytest.fixture(autouse=True)
def _fresh_sample_cache():
    pages._samples.clear()
    pages._sample_uris.cache_clear()
    yield
    pages._samples.clear()
    pages._sample_uris.cache_clear()


def test_every_style_has_a_committed_sample_and_no_sample_lacks_a_style():
    names = {path.name for path in SAMPLES.glob("*.webp")}
    assert names == {style_samples.file_name(style) for style in catalog.dicebear_styles()}, (
        "samples out of date: run python build/render_style_samples.py"
    )
    for path in SAMPLES.glob("*.webp"):
        with Image.open(path) as image:
            assert image.format == "WEBP"
            assert image.size == (style_samples.SIDE, style_samples.SIDE), path.name
        assert path.stat().st_size < 4096, path.name  # small: 61 of them ship in every build


def test_the_build_script_agrees_the_samples_are_up_to_date():
    check = subprocess.run(
        [sys.executable, str(ROOT / "build" / "render_style_samples.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def no_drawing(*_):
    raise AssertionError("a style sample was rendered on request")


def test_the_picker_carries_every_sample_in_the_page_without_drawing_one(client, monkeypatch):
    monkeypatch.setattr(DiceBearEngine, "render_png", no_drawing)
    page = client.get(f"/projects/{client.project()}", headers={"accept": "text/html"}).text
    grid = page[page.index('class="style-grid"') :]
    for style in catalog.dicebear_styles():
        webp = (SAMPLES / style_samples.file_name(style)).read_bytes()
        assert f'src="{style_samples.data_uri(webp)}"' in grid, style  # no request at all
    assert "/ui/styles/" not in grid


def test_the_sample_route_serves_the_committed_files_without_drawing(client, monkeypatch):
    monkeypatch.setattr(DiceBearEngine, "render_png", no_drawing)
    for style in catalog.dicebear_styles():
        answer = client.get(f"/ui/styles/{style}")
        assert answer.status_code == 200, style
        assert answer.headers["content-type"] == "image/webp"
        assert answer.content == (SAMPLES / style_samples.file_name(style)).read_bytes()
    assert client.get("/ui/styles/no-such-style").status_code == 404


def test_a_style_newer_than_the_samples_is_drawn_once_off_the_server(client, monkeypatch, tmp_path):
    monkeypatch.setattr(style_samples, "folder", lambda assets: tmp_path)  # no samples at all
    answer = client.get("/ui/styles/bottts")
    assert answer.status_code == 200
    with Image.open(io.BytesIO(answer.content)) as image:
        assert image.size == (style_samples.SIDE,) * 2
