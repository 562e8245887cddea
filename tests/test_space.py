"""The same app.py runs on a Hugging Face Space: ZeroGPU wrapping and the README's Space front matter."""

import json
import subprocess
import sys

from huggingface_hub import ModelCard

from apps.common import FILE_LANE
from tests.conftest import REPO_ROOT

# The playground trains a few hundred weights: it waits in the model pool like the others but stays on the CPU.
CPU_ONLY = {"train_playground", "neuron_maps"}


def built_with_fake_spaces(tmp_path, code: str) -> str:
    """Run `code` after building the app with a stand-in `spaces` package that records what spaces.GPU wraps, and
    the duration it was given (WRAPPED: function name -> duration or None)."""
    fake = tmp_path / "spaces.py"
    fake.write_text(
        "WRAPPED = {}\n"
        "def GPU(fn=None, **settings):\n"
        "    def wrap(f):\n"
        "        WRAPPED[f.__name__] = settings.get('duration')\n"
        "        return f\n"
        "    return wrap(fn) if fn is not None else wrap\n"
    )
    env_path = f"{tmp_path}:{REPO_ROOT}"
    result = subprocess.run(
        [sys.executable, "-c", "import spaces, app\napp.build_demo()\n" + code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": env_path, "PATH": "", "MODEL_SHOW_FIT_SECONDS": "35", "MODEL_SHOW_CURVE_DIGITS": "200"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_model_endpoints_are_wrapped_with_spaces_gpu_when_spaces_is_installed(tmp_path):
    """Derived from the built app: every public endpoint in the model pool or in a long job's lane runs its network
    inside spaces.GPU; and every event of a function that spaces.GPU wraps waits in one of those groups."""
    code = """
import json
demo = app.build_demo()
events = [(fn.name, fn.api_name if fn.api_visibility == "public" else None, fn.concurrency_id == str(id(fn.fn)), fn.concurrency_id)
          for fn in demo.fns.values()]
print(json.dumps({"wrapped": sorted(spaces.WRAPPED), "events": events}))
"""
    found = json.loads(built_with_fake_spaces(tmp_path, code).strip().splitlines()[-1])
    wrapped = set(found["wrapped"])
    groups = {group for _, api, own, group in found["events"] if api and not own and group != FILE_LANE["concurrency_id"]}
    model_endpoints = {name for name, api, own, group in found["events"] if api and group in groups} - CPU_ONLY
    assert len(model_endpoints) >= 15
    assert model_endpoints <= wrapped, f"not wrapped: {sorted(model_endpoints - wrapped)}"
    outside = sorted({name for name, _, own, _ in found["events"] if name in wrapped and own})
    assert outside == [], f"GPU functions wired outside every named group: {outside}"


def test_gpu_leases_are_sized_to_the_call(tmp_path):
    """Where a call's cost depends on its settings, the lease is computed from them (ZeroGPU calls the duration with
    the request's own arguments, before the tab checks them); fixed-cost long jobs get a fixed, longer lease."""
    code = """
import json
d = spaces.WRAPPED
few, many = d["generate_digits_diffusion"]("seven", 1, 5, 1.0, 0, "DDIM"), d["generate_digits_diffusion"]("seven", 64, 100, 3.0, 0, "DDIM")
fgsm = d["attack"](None, "digit", "fgsm", 8, 10, 1, "none", 40, 20, 0)
pgd = d["attack"](None, "photo", "pgd", 8, 100, 1, "none", 40, 20, 0)
pixel = d["attack"](None, "photo", "one-pixel", 8, 10, 1, "none", 400, 200, 0)
hostile = d["attack"](None, "photo", "pgd", 8, float("nan"), 1, "none", "lots", None, 0)
print(json.dumps(dict(few=few, many=many, fgsm=fgsm, pgd=pgd, pixel=pixel, hostile=hostile,
    short=d["generate_text"]("LSTM", "Emma", 0.8, 40, 0.95, 1, 0), long=d["generate_text"]("LSTM", "Emma", 0.8, 40, 0.95, 10**9, 0),
    fit=d["fit_fabric"], curve=d["robustness_curve"])))
"""
    leases = json.loads(built_with_fake_spaces(tmp_path, code).strip().splitlines()[-1])
    assert all(isinstance(v, int) and 5 <= v <= 120 for v in leases.values()), leases
    assert leases["few"] < leases["many"] and leases["fgsm"] < leases["pgd"] and leases["fgsm"] < leases["pixel"]
    assert leases["short"] < leases["long"]  # a huge request is sized by the cap it will be held to
    assert leases["fit"] >= 35 + 10 and leases["curve"] > leases["fgsm"]


def test_readme_front_matter_is_a_valid_space_config():
    card = ModelCard.load(REPO_ROOT / "README.md", ignore_metadata_errors=False)
    meta = card.data.to_dict()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    import gradio

    assert meta["sdk_version"] == gradio.__version__, "the Space would run another Gradio than the one we test"
    assert (REPO_ROOT / meta["app_file"]).is_file()
    assert len(meta["short_description"]) <= 60  # the Hub's limit
    # ZeroGPU runs only the Python its docs list (3.10.13); the free CPU hardware is this machine's size.
    assert meta["python_version"] == "3.10.13" and meta["suggested_hardware"] == "cpu-basic"
    assert "education" in meta["tags"]
