"""avspot.datasets must not be shadowed by (nor shadow) a top-level ``datasets`` package."""

import subprocess
import sys
import textwrap


def test_fake_hf_datasets_does_not_shadow(tmp_path):
    fake = tmp_path / "datasets"
    fake.mkdir()
    (fake / "__init__.py").write_text("HF = True\n")
    code = textwrap.dedent(
        """
        import sys
        import datasets
        assert datasets.HF, "the fake Hugging Face package"
        import avspot.datasets.table as t
        from avspot.datasets.synth import synthesize
        from avspot.datasets.labels import CLASSES
        assert t.__name__ == "avspot.datasets.table"
        assert "datasets" in sys.modules and sys.modules["datasets"].HF
        assert CLASSES == ("card", "subs", "soccer")
        # the data layer stays light: no torch, no ray at import
        assert "torch" not in sys.modules and "ray" not in sys.modules, sorted(sys.modules)
        print("ok")
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_all_modules_import_light():
    code = (
        "import sys, avspot.datasets.table, avspot.datasets.synth, avspot.datasets.soccernet, "
        "avspot.datasets.windows, avspot.datasets.inspect, avspot.datasets.s3server, avspot.datasets.labels; "
        "bad = [m for m in ('torch', 'ray', 'boto3', 'mlflow') if m in sys.modules]; "
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
