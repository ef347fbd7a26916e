"""``wplus manifest``: how far a dataset run got (merged over every shard's manifest)."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import echo_json, one_line_errors
from wplus.cli.help import WplusCommand
from wplus.datasets.manifest import summarize


@click.command("manifest", cls=WplusCommand)
@click.argument("outdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--failures", "show", type=click.IntRange(0), default=10, show_default=True, help="Failures to list.")
@one_line_errors
def manifest_cmd(outdir: Path, as_json: bool, show: int) -> None:
    """Summarise the manifests of a `wplus project` run in OUTDIR: images done, failed and still running (killed
    runs leave 'running'; rerunning the command redoes them), each failure's reason, and throughput.

    \b
    Examples:
      wplus manifest out/
      wplus manifest out/ --json | jq .images_per_hour
    """
    s = summarize(outdir)
    if as_json:
        echo_json(s)
        return
    click.echo(f"{outdir}: {s['images']} images: {s['done']} done, {s['failed']} failed, {s['running']} running")
    click.echo(f"  manifests: {', '.join(s['manifests'])}")
    if s["images_per_hour"] is not None:
        click.echo(
            f"  throughput: {s['images_per_hour']:.1f} images/hour ({s['busy_seconds']:.1f} s busy, "
            f"{s['mean_seconds_per_image']:.2f} s per image), mean PSNR {s['mean_psnr']:.2f} dB"
        )
    for f in s["failures"][:show]:
        click.echo(f"  failed: {f['error']}")
    if len(s["failures"]) > show:
        click.echo(f"  ... and {len(s['failures']) - show} more failures (--json lists all)")
    if s["bad_lines"]:
        click.echo(f"  skipped {s['bad_lines']} unreadable manifest lines (a run killed while writing one)")
