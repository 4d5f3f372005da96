"""Benchmark app: one queue trigger that spends a fixed time "calling Graph" and records when it ran."""

from __future__ import annotations

import json
import os
import threading
import time

import azure.functions as func

app = func.FunctionApp()
_lock = threading.Lock()


@app.queue_trigger(arg_name="msg", queue_name="%BENCH_QUEUE%", connection="AzureWebJobsStorage")
def echo(msg: func.QueueMessage) -> None:
    payload = json.loads(msg.get_body())
    time.sleep(float(os.environ.get("BENCH_WORK_SECONDS", "0")))  # stands in for a Graph round trip
    line = json.dumps({"n": payload["n"], "sent": payload["sent"], "ran": time.time()})
    with _lock, open(os.environ["BENCH_RECORD_FILE"], "a", encoding="utf-8") as out:
        out.write(line + "\n")
