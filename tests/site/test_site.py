"""The static site: complete, offline, relative links that resolve, byte-identical on a rebuild,
and honest about what is missing."""

from __future__ import annotations

import hashlib
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from midilm.report.provenance import Provenance
from midilm.report.site import build_site
from tests.conftest import REPO_ROOT, tiny_params


class Links(HTMLParser):
    """Every href/src of a page, and the class of every table."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tables: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        for name in ("href", "src"):
            if values.get(name):
                self.urls.append(str(values[name]))
        if tag == "table":
            self.tables.append(str(values.get("class")))


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_links_resolve(page: Path) -> None:
    for url in parse(page).urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page}: external link {url}"
        assert not url.startswith("/"), f"{page}: absolute link {url}"
        if parts.path:
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page}: {url} does not resolve ({target})"


def test_site_is_complete_offline_and_byte_identical_on_rebuild(
    rendered_repo: Path, built_site: Path
) -> None:
    site = built_site
    first = digests(site)
    written = build_site(rendered_repo)
    assert digests(site) == first  # same inputs: same HTML and PNG bytes
    assert sorted(first) == sorted(p.relative_to(site).as_posix() for p in written)

    tables = sorted((rendered_repo / "reports" / "tables").glob("T*.md"))
    assert any(t.stem == "T8_listening" for t in tables)
    index = site / "index.html"
    text = index.read_text()
    assert parse(index).tables.count("results") == len(tables)
    for table in tables:
        assert f'id="{table.stem}"' in text
    assert "SYNTHETIC" in text  # the synthetic T8 keeps its label on the site
    assert 'href="#T8_listening"' in text and "reports/listening/ratings.csv" in text
    assert "mix_000" in text and "metadata" in text
    for key in ("gpt", "mamba", "llama"):
        assert f'href="models/{key}.html"' in text
        assert (site / "img" / "loss" / f"{key}.png").is_file()
    assert text.count("Provenance: git ") >= len(tables)

    for page in site.rglob("*.html"):
        assert_links_resolve(page)
        assert "<script" not in page.read_text()  # nothing to run, nothing to fetch
    assert not [p for p in site.rglob("*") if p.suffix in {".mp3", ".flac", ".wav", ".mid"}]
    assert sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) < 2_000_000
    for png in site.rglob("*.png"):
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG") and b"matplotlib" not in data  # no version stamp


def test_model_page_pairs_each_sample_with_its_reference(built_site: Path) -> None:
    page = built_site / "models" / "gpt.html"
    text = page.read_text()
    links = parse(page)
    assert text.count('class="sample"') == 2
    assert links.tags.count("audio") == 4  # sample and reference, twice
    assert links.urls.count("../../../outputs/audio/gpt/sample_000.mp3") == 2  # player + link
    assert "reference it continued: jigs107" in text
    assert "rhythm_consistency" in text and "prompt_notes" in text
    assert "speed.train_tokens_per_s" in text  # DVC metrics flattened
    llama = (built_site / "models" / "llama.html").read_text()
    assert "audio not rendered yet (run `dvc repro render@llama`)" in llama
    assert "outputs/audio/llama/audio.json is missing" in llama


def test_missing_and_broken_inputs_are_said_on_the_page(
    rendered_repo: Path, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(rendered_repo, root, ignore=shutil.ignore_patterns("site"))
    shutil.rmtree(root / "outputs" / "lofi")
    (root / "reports" / "tables" / "T8_listening.md").unlink()
    (root / "reports" / "listening" / "ratings.csv").unlink()
    (root / "outputs" / "samples" / "mamba" / "samples.json").write_text("{not json")
    (root / "outputs" / "samples" / "gpt" / "sample_001.mid").write_bytes(b"MThd garbage")
    (root / "outputs" / "audio" / "gpt" / "sample_000.mp3").unlink()  # the FLAC remains
    (root / "outputs" / "audio" / "gpt" / "reference_001.mp3").unlink()
    (root / "outputs" / "audio" / "gpt" / "reference_001.flac").unlink()
    (root / "models" / "llama" / "train_log.csv").write_text("step,train_loss,val_loss,lr\n")

    build_site(
        root, models=["gpt", "mamba", "llama"], provenance=Provenance("abc", "p" * 12, "d" * 12)
    )
    site = root / "reports" / "site"
    index = (site / "index.html").read_text()
    assert "outputs/lofi/lofi.json is missing (run `dvc repro lofi`)" in index
    assert "No listening-test table (T8_listening) yet" in index
    assert "No ratings file committed at reports/listening/ratings.csv" in index
    gpt = (site / "models" / "gpt.html").read_text()
    assert "unreadable MIDI" in gpt and "sample_001.mid" in gpt
    assert 'src="../../../outputs/audio/gpt/sample_000.flac"' in gpt  # MP3 gone: FLAC plays
    assert "audio file missing: outputs/audio/gpt/reference_001.mp3" in gpt
    mamba = (site / "models" / "mamba.html").read_text()
    assert "samples.json could not be read" in mamba and "No samples for mamba yet" in mamba
    llama = (site / "models" / "llama.html").read_text()
    assert "no loss values" in llama
    for page in site.rglob("*.html"):
        assert "Provenance: git abc, params pppppppppppp, data dddddddddddd" in page.read_text()
        assert_links_resolve(page)


def test_an_empty_repository_gives_a_site_that_says_nothing_ran(tmp_path: Path) -> None:
    build_site(tmp_path)
    index = (tmp_path / "reports" / "site" / "index.html").read_text()
    assert "No tables in" in index and "No model outputs yet" in index
    assert "No loss curves yet" in index
    assert "Provenance: not recorded" in index


@pytest.mark.parametrize("key", ["../evil", "a b"])
def test_model_keys_that_are_not_file_names_are_skipped(tmp_path: Path, key: str) -> None:
    written = build_site(tmp_path, models=[key, "gpt"])
    assert sorted(p.name for p in written if p.parent.name == "models") == ["gpt.html"]


def test_the_stage_function_shows_params_models_with_the_reports_provenance(
    tmp_path: Path,
) -> None:
    from midilm.common.paths import Layout
    from midilm.report.site.stage import run_site

    params = tiny_params(REPO_ROOT)
    params["models"] = {"rwkv6": params["models"]["tiny"], "gpt": params["models"]["tiny"]}
    written = run_site(params, Layout(tmp_path))
    site = tmp_path / "reports" / "site"
    assert {p.relative_to(site).as_posix() for p in written} >= {
        "index.html",
        "models/rwkv6.html",
        "models/gpt.html",
        "models/seqgan.html",  # SeqGAN's melodies, after the models
    }
    index = (site / "index.html").read_text()
    assert index.index("models/rwkv6.html") < index.index("models/gpt.html")  # params order
    seqgan = (site / "models" / "seqgan.html").read_text()
    assert "run <code>dvc repro seqgan_music</code>" in seqgan and "train@seqgan" not in seqgan
    assert "Provenance: git no-git, params " in index and "data no-data" in index
    assert (
        "No samples for gpt yet (run <code>dvc repro generate@gpt</code>)"
        in (site / "models" / "gpt.html").read_text()
    )
