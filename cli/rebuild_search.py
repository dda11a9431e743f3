"""`damai rebuild search` and `damai verify search` (projections/rebuild_search.py)."""

from __future__ import annotations

import asyncio

import typer

from cli.context import command_settings


def rebuild_search_command() -> None:
    """Build the program search index anew from the read model beside the live one, then move the
    live name to it and catch up with what changed meanwhile; safe while the system runs."""
    from bootstrap import Adapters
    from projections.rebuild_search import SearchRebuilt, rebuild_search

    settings = command_settings()

    async def rebuild() -> SearchRebuilt:
        # With the templates applied: the new index gets the mapping of this release.
        adapters = await Adapters.open(settings)
        try:
            return await rebuild_search(settings, adapters.es, adapters.db, adapters.redis)
        finally:
            await adapters.close()

    rebuilt = asyncio.run(rebuild())
    typer.echo(f"{rebuilt.documents} documents written to {rebuilt.new_index}, now live")
    typer.echo(f"{rebuilt.caught_up} documents caught up (newer in the old index: written during the rebuild)")
    if rebuilt.old_index is None:
        typer.echo("no index was live before")
    else:
        same = "the same" if rebuilt.old_hash == rebuilt.new_hash else "different"
        typer.echo(f"replaced {rebuilt.old_index}: {rebuilt.old_hash}; new: {rebuilt.new_hash} ({same})")
        typer.echo(
            f"kept {rebuilt.old_index}, frozen for writes" if rebuilt.old_kept else f"deleted {rebuilt.old_index}"
        )
    typer.echo(f"rebuilt in {rebuilt.seconds:.1f}s")


def verify_search_command() -> None:
    """Compare the live program search documents with those the read model makes now (what a rebuild
    would write); writes nothing; exit 1 on any difference."""
    from bootstrap import Adapters
    from projections.rebuild_search import SearchVerified, verify_search

    settings = command_settings()

    async def verify() -> SearchVerified:
        adapters = await Adapters.open(settings, index_templates=False)
        try:
            return await verify_search(settings, adapters.es, adapters.db, adapters.redis)
        finally:
            await adapters.close()

    verified = asyncio.run(verify())
    typer.echo(f"live index {verified.index or '(none)'}: {verified.indexed}")
    typer.echo(f"from the read model: {verified.fresh}")
    for ids, what in (
        (verified.missing, "missing: a visible program without a document"),
        (verified.extra, "extra: a document of no visible program"),
        (verified.different, "different: not the document the read model makes"),
    ):
        for document_id in ids:
            typer.echo(f"{document_id} {what}")
    differences = len(verified.missing) + len(verified.extra) + len(verified.different)
    typer.echo(f"{verified.fresh.count + len(verified.extra)} documents checked, {differences} differences")
    if not verified.agrees:
        raise typer.Exit(1)
