"""The site in a real browser (headless Chromium from the file system, no network): every table,
image and audio element is there, every image decodes and every audio source loads."""

from __future__ import annotations

from pathlib import Path

ALL_LOADED = """() => {
  const audios = [...document.querySelectorAll('audio')];
  const images = [...document.querySelectorAll('img')];
  return audios.every(a => a.readyState >= 1 || a.error) && images.every(i => i.complete);
}"""

MEDIA_STATE = """() => ({
  tables: document.querySelectorAll('table.results').length,
  images: [...document.querySelectorAll('img')].map(i => ({src: i.src, width: i.naturalWidth})),
  audios: [...document.querySelectorAll('audio')].map(a => ({
    src: a.currentSrc, ready: a.readyState, error: a.error ? a.error.code : null,
    duration: a.duration})),
})"""


def test_every_page_loads_its_tables_images_and_audio(
    rendered_repo: Path, built_site: Path, chromium, tmp_path: Path
) -> None:
    site = built_site
    pages = [site / "index.html", *sorted((site / "models").glob("*.html"))]
    tables = len(list((rendered_repo / "reports" / "tables").glob("T*.md")))
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    seen_audio = seen_images = 0
    for html in pages:
        page.goto(html.as_uri())
        page.wait_for_function(ALL_LOADED, timeout=20_000)
        state = page.evaluate(MEDIA_STATE)
        if html.name == "index.html":
            assert state["tables"] == tables
        for image in state["images"]:
            assert image["width"] > 0, f"{html.name}: image {image['src']} did not decode"
        for audio in state["audios"]:
            assert audio["error"] is None and audio["ready"] >= 1, f"{html.name}: {audio}"
            assert audio["duration"] > 0.5, f"{html.name}: {audio}"
        seen_audio += len(state["audios"])
        seen_images += len(state["images"])
        page.screenshot(path=str(tmp_path / f"{html.stem}.png"), full_page=True)
    context.close()
    # gpt and mamba: 2 samples + 2 references each; the lo-fi mix
    assert seen_audio == 9
    # per model: loss curve + 2 rolls + 2 reference rolls; index: overview + 3 curves
    assert seen_images == 3 * 5 + 4
    assert all(url.startswith("file://") for url in requested), requested
    assert not errors, errors
    assert len(list(tmp_path.glob("*.png"))) == len(pages)
