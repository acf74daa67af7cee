"""py_agent.local_servers: the diagnosis a page shows when a local model server cannot be reached."""

from __future__ import annotations

import json

import pytest

from py_agent.local_servers import SERVERS, diagnose, find_server, main, markdown, table


def test_the_server_is_known_by_its_prefix_or_default_port() -> None:
    assert find_server("http://localhost:11434/v1").id == "ollama"  # type: ignore[union-attr]
    assert find_server("http://127.0.0.1:8080/v1").id == "llamacpp"  # type: ignore[union-attr]
    assert find_server("http://box:9999/v1", provider="vllm").id == "vllm"  # type: ignore[union-attr]
    assert find_server("http://box:9999/v1") is None


def test_no_cors_names_the_exact_fix_with_the_page_origin() -> None:
    d = diagnose("http://localhost:11434/v1", "cors", page_origin="https://me.github.io")
    assert d.failure == "cors" and d.server == "ollama"
    assert "is running but does not allow requests from https://me.github.io" in d.message
    assert "OLLAMA_ORIGINS=https://me.github.io ollama serve" in d.hint
    lm = diagnose("http://localhost:1234/v1", "cors", page_origin="http://127.0.0.1:8000")
    assert "lms server start --cors" in lm.hint and "Enable CORS" in lm.hint


def test_not_running_says_how_to_start_it() -> None:
    d = diagnose("http://localhost:8080/v1", "unreachable")
    assert "does not seem to be running" in d.message and "llama-server -m model.gguf" in d.hint


def test_when_the_page_cannot_tell_both_causes_are_named() -> None:
    d = diagnose("http://localhost:8000/v1", None, page_origin="http://localhost:5000")
    assert "either it is not running, or it does not allow requests from http://localhost:5000" in d.message
    assert "vllm serve" in d.hint and "--allowed-origins" in d.hint


def test_mixed_content_and_the_page_policy() -> None:
    d = diagnose("http://192.168.1.20:11434/v1", None, page_origin="https://me.github.io")
    assert d.failure == "mixed_content" and "over plain http" in d.message and "https" in d.hint
    # loopback is allowed from https pages
    assert diagnose("http://127.0.0.1:11434/v1", None, page_origin="https://me.github.io").failure == "unreachable"
    assert "security policy" in diagnose("http://192.168.1.20:11434/v1", "blocked").message


def test_a_key_is_asked_for() -> None:
    d = diagnose("http://localhost:8000/v1", "unauthorized")
    assert "wants an API key" in d.message and "--api-key" in d.hint


@pytest.mark.parametrize("server", SERVERS, ids=lambda s: s.id)
def test_every_fix_names_the_origin(server) -> None:  # type: ignore[no-untyped-def]
    # LM Studio's switch allows every origin: there is no origin to name
    assert ("{origin}" in server.cors_fix) == (server.id != "lmstudio")
    assert server.base_url.endswith("/v1") and server.start and server.docs.startswith("https://")


def test_the_table_for_the_page_and_the_docs(capsys: pytest.CaptureFixture[str]) -> None:
    assert [row["id"] for row in table()] == ["ollama", "llamacpp", "vllm", "lmstudio"]
    main([])
    assert json.loads(capsys.readouterr().out) == table()
    assert markdown().count("\n") == len(SERVERS) + 1 and "OLLAMA_ORIGINS=https://your.site" in markdown()


def test_local_network_access_not_granted() -> None:
    d = diagnose("http://127.0.0.1:1234/v1", "local_network", page_origin="https://me.github.io", provider="lmstudio")
    assert d.failure == "local_network" and d.server == "lmstudio"
    assert "needs your permission" in d.message and "http://127.0.0.1:1234" in d.message
    assert "allow local network access" in d.hint and "not running" not in d.message
