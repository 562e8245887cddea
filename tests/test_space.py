"""The same app.py runs on a Hugging Face Space: ZeroGPU wrapping and the README's Space front matter."""

import subprocess
import sys

from huggingface_hub import ModelCard

from tests.conftest import REPO_ROOT

# Every endpoint that runs a model; the Neurons playground trains a few hundred weights and stays on the CPU.
MODEL_ENDPOINTS = {
    "attack",
    "recompute_curve",
    "classify_image",
    "explain_image",
    "teach_classes",
    "classify_taught",
    "generate_digits",
    "interpolate_digits",
    "generate_digits_diffusion",
    "gan_for_comparison",
    "classify_digit",
    "next_words",
    "generate_text",
    "segment_digits",
    "horse_to_zebra",
    "detect_defects",
    "fit_to_fabric",
}


def test_model_endpoints_are_wrapped_with_spaces_gpu_when_spaces_is_installed(tmp_path):
    """A stand-in `spaces` package records what spaces.GPU wraps while the whole app is built."""
    fake = tmp_path / "spaces.py"
    fake.write_text(
        "WRAPPED = []\n"
        "def GPU(fn=None, **settings):\n"
        "    def wrap(f):\n"
        "        WRAPPED.append(f.__name__)\n"
        "        return f\n"
        "    return wrap(fn) if fn is not None else wrap\n"
    )
    code = "import spaces, app\napp.build_demo()\nprint(' '.join(sorted(set(spaces.WRAPPED))))\n"
    env_path = f"{tmp_path}:{REPO_ROOT}"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": env_path, "PATH": ""}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wrapped = set(result.stdout.split())
    assert MODEL_ENDPOINTS <= wrapped, f"not wrapped: {sorted(MODEL_ENDPOINTS - wrapped)}"


def test_readme_front_matter_is_a_valid_space_config():
    card = ModelCard.load(REPO_ROOT / "README.md", ignore_metadata_errors=False)
    meta = card.data.to_dict()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    import gradio

    assert meta["sdk_version"] == gradio.__version__, "the Space would run another Gradio than the one we test"
    assert (REPO_ROOT / meta["app_file"]).is_file()
    assert len(meta["short_description"]) <= 60  # the Hub's limit
