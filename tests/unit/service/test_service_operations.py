"""The Service's read side that needs no index: the ledger's ignored files and the re-embed
cost in words."""

from __future__ import annotations

import json
import threading

from app.config import load_settings
from app.service import Service


def test_ignored_files_persist_in_the_config_folder_where_the_tray_kept_them(tmp_path):
    settings = load_settings(home=tmp_path / "home", env={})
    service = Service(settings)
    assert service.ignored() == set()
    assert service.ignore(["docs:a", "docs:b"]) == {"docs:a", "docs:b"}
    path = settings.paths.config_dir / "ui-state.json"
    assert json.loads(path.read_text()) == {"ignored": ["docs:a", "docs:b"]}
    assert Service(settings).ignored() == {"docs:a", "docs:b"}  # another instance reads it
    assert service.ignore(["docs:a"], undo=True) == {"docs:b"}
    path.write_text("not json")
    assert service.ignored() == set()


def test_concurrent_ignores_lose_nothing(tmp_path):
    service = Service(load_settings(home=tmp_path / "home", env={}))
    threads = [threading.Thread(target=service.ignore, args=([f"docs:{i}"],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert service.ignored() == {f"docs:{i}" for i in range(20)}


def test_reembed_cost_in_words():
    assert Service.reembed_cost("wordllama:64", 12_500) == "about 10 s"
    assert "depends on the endpoint" in Service.reembed_cost("openai:text-embedding-3-small",
                                                              500)
