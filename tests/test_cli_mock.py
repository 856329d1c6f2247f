"""`watui mock-api` as a real process: it listens, applies its options, and refuses bad ones."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from watui.whatsapp.payload import build_template_message


def test_mock_api_process_serves_with_its_options() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "watui", "mock-api", "--port", "0", "--latency", "0,0",
         "--token", "cli-token", "--fail-suffix", "13=131026", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        base_url = first_line.split(" on ", 1)[1].split()[0]
        headers = {"Authorization": "Bearer cli-token"}
        url = f"{base_url}/v23.0/1000001/messages"
        with httpx.Client(headers=headers, timeout=10) as http:
            ok = http.post(url, content=json.dumps(
                build_template_message("+15550000001", "welcome", "en_US", {}, None)))
            refused = http.post(url, content=json.dumps(
                build_template_message("+15550000013", "welcome", "en_US", {}, None)))
        assert ok.status_code == 200 and ok.json()["messages"][0]["id"].startswith("wamid.")
        assert refused.json()["error"]["code"] == 131026
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize(
    ("option", "words"),
    [(["--fail-suffix", "13:131026"], "DIGITS=CODE"), (["--reset-rate", "2"], "between 0 and 1"),
     (["--latency", "fast"], "MIN,MAX"), (["--refuse-status", "200"], "400-599"),
     (["--number-fault", "1000002:131048"], "ID=CODE")],
)
def test_bad_options_are_one_line_with_exit_2(option: list[str], words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "watui", "mock-api", "--port", "0", *option],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and words in done.stderr
