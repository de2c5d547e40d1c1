"""training_curve.svg (tune.training.curve): drawn from metrics.jsonl, readable, one point per logged step."""

import json
import xml.etree.ElementTree as ET

from tune.training.curve import curve_title, training_curve_svg, write_training_curve

SVG = "{http://www.w3.org/2000/svg}"


def sft_records(steps=range(1, 31)):
    return [{"step": s, "epoch": s / 30, "loss": 9.0 - 0.2 * s, "lr": 3e-3 * min(1, s / 5), "grad_norm": 1.0,
             "tokens_per_s": 100.0} for s in steps]


def dpo_records():
    return [{**record, "rewards/margins": 0.05 * record["step"] - 0.3, "rewards/accuracies": min(1.0, record["step"] / 20)}
            for record in sft_records(range(1, 11))]


def write_metrics(path, records, extra_lines=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "".join(line + "\n" for line in extra_lines))
    return path


def series(root) -> dict[str, list[tuple[float, float]]]:
    found = {}
    for line in root.iter(f"{SVG}polyline"):
        found[line.get("data-series")] = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    return found


def texts(root, cls=None) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}text") if cls is None or t.get("class") == cls]


def test_sft_curve_is_an_svg_with_loss_and_lr_on_two_labelled_axes():
    root = ET.fromstring(training_curve_svg(sft_records(), "run-7: SFT, LoRA, tiny-llm-jp-4-8b"))
    assert root.tag == f"{SVG}svg"
    drawn = series(root)
    assert set(drawn) == {"loss", "lr"}
    assert len(drawn["loss"]) == 30 and len(drawn["lr"]) == 30
    xs = [x for x, _ in drawn["loss"]]
    assert xs == sorted(xs) and len(set(xs)) == 30  # one point per step, left to right
    ys = [y for _, y in drawn["loss"]]
    assert ys == sorted(ys)  # a falling loss is drawn falling (SVG y grows downwards)
    assert texts(root, "axis-label") == ["step", "loss", "learning rate (lr)"]
    assert root.find(f"{SVG}title").text == "run-7: SFT, LoRA, tiny-llm-jp-4-8b"
    assert "run-7: SFT, LoRA, tiny-llm-jp-4-8b" in texts(root)
    legend = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "legend" for t in g.iter(f"{SVG}text")]
    assert legend == ["loss", "learning rate (lr)"]
    labels = texts(root)
    assert "0.003" in labels and "30" in labels  # the lr axis reaches the peak lr, the step axis the last step


def test_dpo_curve_adds_a_panel_with_reward_margin_and_accuracy():
    root = ET.fromstring(training_curve_svg(dpo_records(), "dpo"))
    drawn = series(root)
    assert set(drawn) == {"loss", "lr", "rewards/margins", "rewards/accuracies"}
    assert all(len(points) == 10 for points in drawn.values())
    assert texts(root, "axis-label") == ["step", "loss", "learning rate (lr)",
                                         "step", "reward margin (chosen - rejected)", "reward accuracy"]
    lowest_loss_panel = max(y for _, y in drawn["loss"] + drawn["lr"])
    assert min(y for _, y in drawn["rewards/margins"] + drawn["rewards/accuracies"]) > lowest_loss_panel  # below it
    assert "0" in texts(root) and "1" in texts(root)  # the margin axis shows 0, the accuracy axis runs to 1


def test_steps_without_a_finite_value_are_left_out_of_that_series_only():
    records = sft_records(range(1, 6))
    records[2]["loss"] = float("nan")
    records[3]["lr"] = None
    drawn = series(ET.fromstring(training_curve_svg(records, "t")))
    assert len(drawn["loss"]) == 4 and len(drawn["lr"]) == 4


def test_a_single_logged_step_still_shows_as_a_dot():
    root = ET.fromstring(training_curve_svg(sft_records([1]), "t"))
    assert len(series(root)["loss"]) == 1
    assert len(list(root.iter(f"{SVG}circle"))) == 2  # loss and lr


def test_no_logged_loss_writes_no_picture_and_removes_a_stale_one(tmp_path):
    final = tmp_path / "final"
    final.mkdir()
    out = tmp_path / "training_curve.svg"
    for stale in (out, final / out.name):
        stale.write_text("<svg/>")
    metrics = write_metrics(tmp_path / "metrics.jsonl", [{"step": 0, "lr": 1e-3}])
    assert write_training_curve(metrics, out, "t", copy_to=[final]) is None
    assert not out.exists() and not (final / out.name).exists()
    assert write_training_curve(tmp_path / "missing.jsonl", out, "t") is None and not out.exists()


def test_written_picture_is_copied_and_survives_a_cut_line_and_a_repeated_step(tmp_path):
    final = tmp_path / "final"
    final.mkdir()
    records = sft_records(range(1, 11))
    metrics = write_metrics(tmp_path / "metrics.jsonl", records + [records[-1]], extra_lines=['{"step": 11, "lo'])
    out = write_training_curve(metrics, tmp_path / "training_curve.svg", "t", copy_to=[final])
    assert out == tmp_path / "training_curve.svg"
    assert (final / out.name).read_bytes() == out.read_bytes()
    assert len(series(ET.parse(out).getroot())["loss"]) == 10


def test_curve_title_names_the_run_folder_method_and_how_weights_train(tmp_path):
    from tune.recipe import load_recipe

    dpo = load_recipe("tiny/dpo-lora", ["method.lora.rslora=true"]).recipe
    assert curve_title(dpo, tmp_path / "run-3") == "run-3: DPO (sigmoid, beta 0.5), LoRA + rsLoRA, tiny-llm-jp-4-8b"
    full = load_recipe("tiny/sft-full").recipe
    assert curve_title(full, tmp_path / "a") == "a: SFT, full, tiny-llm-jp-4-8b"


def test_title_text_is_escaped(tmp_path):
    root = ET.fromstring(training_curve_svg(sft_records([1, 2]), "a<b & c"))
    assert root.find(f"{SVG}title").text == "a<b & c"
