"""The recipe's log line format."""

import json

from training.log import LINE_FORMAT, TrainLog, format_line, parse_line


def test_format_matches_the_recipe_exactly():
    line = format_line(700, 0.5596, 33558.6, 6.754, 7.786, 0.006715, 3.051382)
    assert line == ("step:   700, epoch:  0.6, FPS:33558.6, loss: 6.754, total_loss: 7.786, lr:0.00671, "
                    "batch_time:3.051382")
    assert LINE_FORMAT.count("%") == 7


def test_parse_round_trip_and_rejects_other_formats():
    line = format_line(123456, 12.34, 5.0, 10.5, 11.25, 0.06, 12.5)
    parsed = parse_line(line)
    assert parsed["step"] == 123456 and parsed["lr"] == 0.06 and parsed["batch_time"] == 12.5
    # The Ascend README's illustrative format (no commas) is not the recipe's.
    assert parse_line("step:   700  epoch:  0.6  FPS:33558.6, loss: 6.754, total_loss: 7.786  lr:0.00671  "
                      "batch_time:3.051382") is None
    assert parse_line(line + " extra") is None


def test_train_log_writes_text_and_json(tmp_path, capsys):
    log = TrainLog(str(tmp_path), "run.log", prefix="[rank 1] ")
    log.info("hello")
    line = log.step(step=5, epoch=0.1, fps=10.0, loss=2.0, total_loss=2.5, lr=0.01, batch_time=1.0)
    log.close()
    text = (tmp_path / "run.log").read_text().splitlines()
    assert text == ["hello", line]
    assert capsys.readouterr().out.splitlines() == ["[rank 1] hello", "[rank 1] " + line]
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["step"] == 5 and record["images_per_second"] == 10.0 and record["type"] == "train"
