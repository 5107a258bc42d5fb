"""`lancedb-sync backup [prune|verify|test]`, `snapshots` and `restore`: S3 backups, through the
Service's backup manager (app/backup)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.cli.errors import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UserError
from app.cli.output import TransferLine, ctrl_c_cancels
from app.wording import size


def run_cancellable(job: Callable[[Any], Any]) -> Any:
    with ctrl_c_cancels("stopping") as cancel:
        return job(cancel)


def cmd_backup(args: Any, settings: Any) -> int:
    from app.service import Service

    action = getattr(args, "backup_command", None)
    if action is None and not args.no_prune and settings.s3_bucket:
        result = _backup_via_api(settings)
        if result is not None:
            return print_backup(result, as_json=args.json)
    manager = Service(settings).backup_manager()
    if action == "test":
        checks = manager.test_connection()
        if args.json:
            print(json.dumps([{"check": c.name, "permission": c.permission, "ok": c.ok,
                               "message": c.message} for c in checks], indent=2))
        else:
            for c in checks:
                print(f"{'ok ' if c.ok else 'NO '} {c.name:<7} {c.permission}"
                      + (f"  {c.message}" if c.message else ""))
        return EXIT_OK if all(c.ok for c in checks) else EXIT_FAIL
    if action == "prune":
        result = manager.prune(keep_last=args.keep_last, keep_days=args.keep_days)
        if args.json:
            print(json.dumps(result.as_dict(), indent=2))
        else:
            print(f"Kept {len(result.kept)} snapshots, dropped {len(result.dropped)}; deleted "
                  f"{result.deleted_objects} objects ({size(result.deleted_bytes)}).")
        return EXIT_OK
    if action == "verify":
        spec = args.snapshot or f"{manager.device.device_id}/latest"
        snapshot = manager.resolve(spec)
        progress = TransferLine()
        try:
            res = run_cancellable(lambda cancel: manager.verify(
                snapshot, download=args.download, on_progress=progress, cancel=cancel))
        finally:
            progress.finish()
        if args.json:
            print(json.dumps({"snapshot": snapshot.ref, "checked": res.checked,
                              "problems": res.problems}, indent=2))
        elif res.ok:
            print(f"Snapshot {snapshot.ref}: all {res.checked} files present and intact.")
        else:
            print(f"Snapshot {snapshot.ref}: {len(res.problems)} of {res.checked} files are "
                  "damaged or missing:")
            for problem in res.problems:
                print(f"  ! {problem}")
        return EXIT_OK if res.ok else EXIT_FAIL
    progress = TransferLine()
    try:
        result = run_cancellable(lambda cancel: manager.backup(
            on_progress=progress, cancel=cancel, prune=not args.no_prune)).as_dict()
    finally:
        progress.finish()
    return print_backup(result, as_json=args.json)


def _backup_via_api(settings: Any) -> dict[str, Any] | None:
    """Back up as a job of the running app (POST /backups: it prunes by retention after),
    followed to its end; None when no app answers."""
    from app.cli import remote

    client = remote.client_for(settings)
    if client is None:
        return None
    progress = TransferLine()
    try:
        job = remote.follow_job(client, lambda: client.post("/api/v1/backups"),
                                progress_kind="backup_progress", on_progress=progress,
                                doing="stopping")
    except remote.ApiUnreachable:
        return None
    except remote.ApiRequestError as exc:
        remote.fail(exc)
    except remote.JobInterrupted as stop:
        remote.job_failed(stop.job)
    finally:
        progress.finish()
    if job["state"] != "done" or not job.get("result"):
        remote.job_failed(job)
    return job["result"]


def print_backup(result: dict[str, Any], *, as_json: bool) -> int:
    """A backup's result in its JSON form (BackupResult.as_dict), as both paths print it."""
    if as_json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    print(f"Snapshot {result['device_id']}/{result['snapshot_id']}: {result['files']} files, "
          f"{size(result['bytes'])}; uploaded {result['uploaded_files']} files "
          f"({size(result['uploaded_bytes'])}), {result['reused_files']} already in the "
          f"bucket ({result['seconds']:.1f} s).")
    pruned = result.get("pruned")
    if pruned and pruned["dropped"]:
        print(f"Pruned {len(pruned['dropped'])} old snapshots "
              f"({pruned['deleted_objects']} objects).")
    return EXIT_OK


def cmd_snapshots(args: Any, settings: Any) -> int:
    from app.service import Service

    manager = Service(settings).backup_manager()
    device = None
    if args.device:
        device = manager.resolve(args.device).device_id
    snaps = manager.snapshots(device)
    if args.json:
        print(json.dumps([s.summary() for s in snaps], indent=2))
        return EXIT_OK
    if not snaps:
        print(f"No snapshots in {manager.cfg.where} yet. Run 'lancedb-sync backup'.")
        return EXIT_OK
    mine = manager.device.device_id
    by_device: dict[str, list[Any]] = {}
    for s in snaps:
        by_device.setdefault(s.device_id, []).append(s)
    for dev, items in by_device.items():
        tag = "  (this device)" if dev == mine else ""
        print(f"{dev}  {items[-1].device_name}{tag}")
        for s in reversed(items):
            docs = s.table(s.documents_table).rows
            print(f"  {s.snapshot_id}  {s.created_at}  {docs:>7,} docs  {size(s.total_bytes)}")
    return EXIT_OK


def cmd_restore(args: Any, settings: Any) -> int:
    from app.service import Service
    from app.service.errors import ChooseSnapshotError

    manager = Service(settings).backup_manager()
    try:
        snapshot = manager.resolve(args.snapshot)
    except ChooseSnapshotError as exc:
        lines = "\n".join(f"  {d}  {name}  ({n} snapshots)" for d, name, n in exc.devices)
        raise UserError("The bucket holds snapshots of several devices; say which one, e.g. "
                        f"'lancedb-sync restore {exc.devices[0][0]}':\n{lines}",
                        EXIT_USAGE) from None
    target = Path(args.to).expanduser() if args.to else None
    progress = TransferLine()
    try:
        result = run_cancellable(lambda cancel: manager.restore(
            snapshot, target=target, force=args.force, on_progress=progress, cancel=cancel))
    finally:
        progress.finish()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return EXIT_OK
    print(f"Restored snapshot {snapshot.ref} ({snapshot.created_at}, "
          f"{snapshot.table(snapshot.documents_table).rows:,} documents, "
          f"{size(snapshot.total_bytes)}) into {result.target} in {result.seconds:.1f} s; "
          "every checksum verified.")
    if result.sources_restored:
        print(f"Added the snapshot's {result.sources_restored} sources to the settings; "
              "'lancedb-sync sync' re-indexes only files that differ.")
    if result.documents_to_redo:
        print(f"{result.documents_to_redo} documents were mid-sync in the snapshot and will be "
              "indexed again by the next sync.")
    from app.service import Service

    wanted = Service(settings).reembed_plan().wanted_model
    if snapshot.embed_model and snapshot.embed_model != wanted:
        print(f"Note: the snapshot was embedded with {snapshot.embed_model}, but the settings "
              f"ask for {wanted}. Set the embedder to {snapshot.embed_model} to use it as it "
              "is, or run 'lancedb-sync reembed'.")
    return EXIT_OK
