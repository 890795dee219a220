"""`virnucpro models download` against a loopback stand-in of the Hub (hub_server.py): the cache layout
(checked by the real huggingface_hub client), resume after a dropped connection, hash mismatch, 404,
401, a stalled server, and `predict` on what was downloaded.

Usage: test_download.py --binary VIRNUCPRO --data tests/data --example examples/example.fa
                        [--venv DIR] [unittest arguments, e.g. -k HfClient]
"""
import argparse
import fcntl
import hashlib
import os
import pty
import re
import shlex
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub_server  # noqa: E402

ARGS = None
ESM = "facebook/esm2_t36_3B_UR50D"


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()

DNABERT = "zhihan1996/DNABERT-S"


class ServerCase(unittest.TestCase):
    """A fresh server state and empty caches for each test."""

    @classmethod
    def setUpClass(cls):
        cls.server = hub_server.HubServer(ARGS.data)

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()

    def setUp(self):
        self.server.reset()
        self.tmp = tempfile.TemporaryDirectory()
        self.hub = os.path.join(self.tmp.name, "hub")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VIRNUCPRO_"))}
        self.env.update({
            "HOME": self.tmp.name,
            "HF_HUB_CACHE": self.hub,
            "XDG_CACHE_HOME": os.path.join(self.tmp.name, "xdg"),
            "TORCH_HOME": os.path.join(self.tmp.name, "torch"),
            "HF_ENDPOINT": self.server.url,
            "VIRNUCPRO_CLASSIFIER_URL": self.server.url + "/VirNucPro",
            "VIRNUCPRO_DOWNLOAD_RETRIES": "0",
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        })

    def tearDown(self):
        self.tmp.cleanup()

    def run_vnp(self, *args, timeout=60, **env):
        e = dict(self.env, **env)
        return subprocess.run([ARGS.binary, *args], env=e, capture_output=True, text=True, timeout=timeout,
                              cwd=self.tmp.name)

    def snapshot(self, repo):
        return os.path.join(self.hub, "models--" + repo.replace("/", "--"), "snapshots",
                            self.server.repos[repo].commit)

    def error_lines(self, r):
        return [line for line in r.stderr.splitlines() if "error" in line]


class DownloadTest(ServerCase):
    def test_download_layout_then_predict(self):
        r = self.run_vnp("models", "download", "all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len([l for l in r.stdout.splitlines() if l.startswith("ok  ")]), 4, r.stdout)
        self.assertIn("%s, revision main (commit %s)" % (ESM, self.server.repos[ESM].commit), r.stdout)
        # Only what predict reads: the safetensors copy, never the second weight file of ESM-2.
        self.assertEqual(self.server.requests("GET", "/%s/resolve/main/pytorch_model.bin" % ESM), [])
        self.assertEqual(self.server.requests("GET", "esm2_t36_3B_UR50D/resolve/%s/pytorch_model.bin"
                                              % self.server.repos[ESM].commit), [])
        for repo in (ESM, DNABERT):
            root = os.path.join(self.hub, "models--" + repo.replace("/", "--"))
            self.assertEqual(read(os.path.join(root, "refs", "main"), "r"), self.server.repos[repo].commit)
            for name, data in self.server.repos[repo].files.items():
                link = os.path.join(self.snapshot(repo), name)
                if repo == ESM and name == "pytorch_model.bin":
                    self.assertFalse(os.path.lexists(link))
                    continue
                target = os.readlink(link)
                self.assertTrue(target.startswith("../../blobs/"), target)
                self.assertEqual(read(link), data)
            self.assertEqual([f for f in os.listdir(os.path.join(root, "blobs")) if f.endswith(".incomplete")], [])
        classifier = os.path.join(self.tmp.name, "xdg", "virnucpro", "500_model.pth")
        self.assertEqual(read(classifier), self.server.raw["500_model.pth"])

        # A second run transfers nothing.
        self.server.reset()
        r = self.run_vnp("models", "download")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count("already there"), 3, r.stdout)
        self.assertEqual(self.server.requests("GET"), [])

        # `models check` says where each model came from; predict finds them all by itself.
        r = self.run_vnp("models", "check")
        self.assertIn("from %s, revision main (commit %s)" % (DNABERT, self.server.repos[DNABERT].commit), r.stdout)
        self.assertIn("from %s/VirNucPro/500_model.pth" % self.server.url, r.stdout)
        out = os.path.join(self.tmp.name, "pred")
        r = self.run_vnp("predict", ARGS.example, "-m", "500", "-o", out, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.getsize(os.path.join(out, "prediction_results.txt")) > 0 or
                        any(f.endswith("prediction_results.txt") for f in os.listdir(out)), os.listdir(out))

    def test_resume_after_dropped_connection(self):
        size = len(self.server.repos[ESM].files["model.safetensors"])
        cut = 300000
        self.server.drop_after["model.safetensors"] = cut
        r = self.run_vnp("models", "download", "esm")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("run the command again to resume", r.stderr)
        self.assertEqual(len(self.error_lines(r)), 1, r.stderr)
        blobs = os.path.join(self.hub, "models--facebook--esm2_t36_3B_UR50D", "blobs")
        sha = hashlib.sha256(self.server.repos[ESM].files["model.safetensors"]).hexdigest()
        self.assertEqual(os.path.getsize(os.path.join(blobs, sha + ".incomplete")), cut)
        self.assertFalse(os.path.exists(os.path.join(blobs, sha)))
        self.assertFalse(os.path.lexists(os.path.join(self.snapshot(ESM), "model.safetensors")))

        self.server.reset()
        r = self.run_vnp("models", "download", "esm")
        self.assertEqual(r.returncode, 0, r.stderr)
        gets = self.server.requests("GET", "/lfs/" + sha)
        self.assertEqual([g["headers"].get("Range") for g in gets], ["bytes=%d-" % cut])
        self.assertIn("%.2f MB fetched" % ((size - cut) / 1e6), r.stdout)
        self.assertEqual(read(os.path.join(blobs, sha)), self.server.repos[ESM].files["model.safetensors"])
        self.assertFalse(os.path.exists(os.path.join(blobs, sha + ".incomplete")))

    def test_retry_resumes_within_one_run(self):
        self.server.drop_after["pytorch_model.bin"] = 1000000
        r = self.run_vnp("models", "download", "dnabert", VIRNUCPRO_DOWNLOAD_RETRIES="2",
                         VIRNUCPRO_DOWNLOAD_BACKOFF_MS="10")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("retrying", r.stderr)
        ranges = [g["headers"].get("Range") for g in self.server.requests("GET", "/lfs/")]
        self.assertEqual(ranges, [None, "bytes=1000000-"])

    def test_wrong_hash_is_refused(self):
        self.server.wrong_hash.add("model.safetensors")
        r = self.run_vnp("models", "download", "esm")
        self.assertEqual(r.returncode, 3, r.stderr)
        data = self.server.repos[ESM].files["model.safetensors"]
        good, bad = hashlib.sha256(data).hexdigest(), hashlib.sha256(b"something else").hexdigest()
        line = self.error_lines(r)
        self.assertEqual(len(line), 1, r.stderr)
        for part in (ESM + "/model.safetensors", good, bad):
            self.assertIn(part, line[0])
        blobs = os.path.join(self.hub, "models--facebook--esm2_t36_3B_UR50D", "blobs")
        self.assertEqual(sorted(f for f in os.listdir(blobs) if bad in f or good in f), [])
        self.assertFalse(os.path.lexists(os.path.join(self.snapshot(ESM), "model.safetensors")))
        # A small file is checked against its git blob id.
        self.server.reset()
        self.server.wrong_hash.add("tokenizer.json")
        r = self.run_vnp("models", "download", "dnabert")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("DNABERT-S/tokenizer.json: downloaded content has git blob id", r.stderr)
        self.assertFalse(os.path.lexists(os.path.join(self.snapshot(DNABERT), "tokenizer.json")))

    def test_404_and_401_are_one_clear_line(self):
        self.server.missing.add("tokenizer.json")
        r = self.run_vnp("models", "download", "dnabert")
        self.assertEqual(r.returncode, 3, r.stderr)
        lines = self.error_lines(r)
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(DNABERT + "/tokenizer.json: HTTP 404", lines[0])
        self.assertIn("check --revision", lines[0])

        self.server.reset()
        r = self.run_vnp("models", "download", "esm", "--revision", "no-such-branch")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("HTTP 404", r.stderr)

        self.server.reset()
        self.server.token = "s3cret"
        r = self.run_vnp("models", "download", "esm")
        self.assertEqual(r.returncode, 3, r.stderr)
        lines = self.error_lines(r)
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(ESM + "/config.json: HTTP 401", lines[0])
        self.assertIn("HF_TOKEN", lines[0])
        self.server.log = []
        r = self.run_vnp("models", "download", "esm", HF_TOKEN="s3cret")
        self.assertEqual(r.returncode, 0, r.stderr)
        # A token saved by `hf auth login` ($HF_HOME/token) serves as well.
        os.makedirs(os.path.join(self.tmp.name, "hfhome"))
        with open(os.path.join(self.tmp.name, "hfhome", "token"), "w") as f:
            f.write("s3cret\n")
        r = self.run_vnp("models", "download", "dnabert", HF_HOME=os.path.join(self.tmp.name, "hfhome"))
        self.assertEqual(r.returncode, 0, r.stderr)
        # The token goes to the Hub, never to the storage large files are redirected to.
        self.assertTrue(all("Authorization" not in g["headers"] for g in self.server.requests(contains="/lfs/")))
        self.assertTrue(all(g["headers"].get("Authorization") == "Bearer s3cret"
                            for g in self.server.requests(contains="/resolve/")))

    def test_cache_dir_and_progress_bar_on_a_terminal(self):
        other = os.path.join(self.tmp.name, "elsewhere")
        master, slave = pty.openpty()
        p = subprocess.Popen([ARGS.binary, "models", "download", "dnabert", "--cache-dir", other], env=self.env,
                             stdout=subprocess.PIPE, stderr=slave, cwd=self.tmp.name)
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
        out = p.communicate(timeout=60)[0].decode()
        os.close(master)
        self.assertEqual(p.returncode, 0, err)
        text = err.decode(errors="replace")
        self.assertRegex(text, r"pytorch_model\.bin  [0-9.]+ [kM]?B / 2\.4 MB  [0-9.]+ [kMG]?B/s")
        self.assertIn("is not where predict looks: set HF_HUB_CACHE=" + other, text)
        self.assertIn(os.path.join(other, "models--zhihan1996--DNABERT-S", "snapshots"), out)
        self.assertFalse(os.path.exists(self.hub))

    def test_a_second_download_waits_for_the_first(self):
        # Holding the lock huggingface_hub and we take for a blob: the download waits, then goes on.
        sha = hashlib.sha256(self.server.repos[DNABERT].files["pytorch_model.bin"]).hexdigest()
        lock_path = os.path.join(self.hub, ".locks", "models--zhihan1996--DNABERT-S", sha + ".lock")
        os.makedirs(os.path.dirname(lock_path))
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            p = subprocess.Popen([ARGS.binary, "models", "download", "dnabert"], env=self.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.tmp.name)
            time.sleep(1.5)
            self.assertIsNone(p.poll())
            self.assertEqual(self.server.requests("GET", "/lfs/"), [])
            fcntl.flock(lock, fcntl.LOCK_UN)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("pytorch_model.bin: waiting for another download of it to finish", err)
        self.assertEqual(len(self.server.requests("GET", "/lfs/")), 1)

    def test_classifier_resumes(self):
        data = self.server.raw["500_model.pth"]
        part = os.path.join(self.tmp.name, "xdg", "virnucpro", "500_model.pth")
        self.server.drop_after["500_model.pth"] = 10000
        r = self.run_vnp("models", "download", "classifier")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(os.path.getsize(part + ".incomplete"), 10000)
        self.assertFalse(os.path.exists(part))
        self.server.reset()
        r = self.run_vnp("models", "download", "classifier")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([g["headers"].get("Range") for g in self.server.requests("GET", "500_model.pth")],
                         ["bytes=10000-"])
        self.assertEqual(read(part), data)
        # A whole file left under the temporary name (cut before its rename): the server has nothing
        # more (416), and it is taken after its check.
        os.rename(part, part + ".incomplete")
        os.remove(part + ".source.json")
        r = self.run_vnp("models", "download", "classifier")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(read(part), data)

    def test_a_file_that_is_not_the_classifier_is_refused(self):
        self.server.raw["300_model.pth"] = b"<html>rate limited</html>"
        try:
            r = self.run_vnp("models", "download", "classifier", "-m", "300")
        finally:
            self.server.raw["300_model.pth"] = self.server.raw["500_model.pth"]
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("300_model.pth: the downloaded file is not the VirNucPro classifier", r.stderr)
        folder = os.path.join(self.tmp.name, "xdg", "virnucpro")
        self.assertEqual([f for f in os.listdir(folder) if not f.endswith(".lock")], [])

    def test_classifier_not_found_names_url(self):
        self.server.missing.add("300_model.pth")
        r = self.run_vnp("models", "download", "classifier", "-m", "300")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("/VirNucPro/300_model.pth: HTTP 404", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "xdg", "virnucpro", "300_model.pth")))

    def test_stalled_server_times_out(self):
        self.server.stall.add("pytorch_model.bin")
        start = time.monotonic()
        r = self.run_vnp("models", "download", "dnabert", VIRNUCPRO_DOWNLOAD_TIMEOUT="2", timeout=50)
        self.assertLess(time.monotonic() - start, 30)
        self.assertEqual(r.returncode, 3, r.stderr)
        lines = self.error_lines(r)
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("DNABERT-S/pytorch_model.bin", lines[0])
        self.assertIn("VIRNUCPRO_DOWNLOAD_TIMEOUT", lines[0])


class HfClientTest(ServerCase):
    """The real huggingface_hub client (PyPI, in a venv): offline it finds every file we wrote, so the
    layout is the Hub's own; and the `hf download` hints the program prints fetch what it needs."""

    def setUp(self):
        super().setUp()
        if not ARGS.venv:
            self.skipTest("needs --venv")
        if not os.path.exists(os.path.join(ARGS.venv, "bin", "hf")):
            subprocess.run([sys.executable, "-m", "venv", ARGS.venv], check=True)
            subprocess.run([os.path.join(ARGS.venv, "bin", "pip"), "install", "-q", "huggingface_hub"], check=True)

    def test_printed_hf_hints_fetch_what_predict_needs(self):
        r = self.run_vnp("models", "check")
        hints = re.findall(r"\(or: (hf download [^)]*)\)", r.stdout)
        self.assertEqual(len(hints), 2, r.stdout)
        for hint in hints:
            args = shlex.split(hint)
            out = subprocess.run([os.path.join(ARGS.venv, "bin", "hf"), *args[1:]], env=self.env,
                                 capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, hint + "\n" + out.stderr)
        self.assertEqual(sorted(os.listdir(self.snapshot(ESM))), ["config.json", "pytorch_model.bin", "vocab.txt"])
        self.assertEqual(sorted(os.listdir(self.snapshot(DNABERT))), ["config.json", "pytorch_model.bin", "tokenizer.json"])
        r = self.run_vnp("models", "check")
        # Found where hf put them (the tiny models are "wrong" only in their sizes).
        for name, repo in (("esm2", ESM), ("dnabert", DNABERT)):
            self.assertIn("%s  %s: embeddings are" % (name, self.snapshot(repo)), r.stdout)
            self.assertIn("(from %s, revision main" % repo, r.stdout)

    def test_huggingface_hub_reads_our_cache(self):
        python = os.path.join(ARGS.venv, "bin", "python")
        r = self.run_vnp("models", "download", "esm")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_vnp("models", "download", "dnabert")
        self.assertEqual(r.returncode, 0, r.stderr)
        script = (
            "import sys, huggingface_hub as h\n"
            "for repo, f in [(a.split(':')[0], a.split(':')[1]) for a in sys.argv[1:]]:\n"
            "    print(h.hf_hub_download(repo, f, revision='main', local_files_only=True))\n")
        wanted = ["%s:%s" % (ESM, f) for f in ("config.json", "vocab.txt", "model.safetensors")] + \
                 ["%s:%s" % (DNABERT, f) for f in ("config.json", "tokenizer.json", "pytorch_model.bin")]
        env = dict(self.env, HF_HUB_OFFLINE="1")
        out = subprocess.run([python, "-c", script, *wanted], env=env, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        paths = out.stdout.split()
        self.assertEqual(len(paths), len(wanted))
        for path, spec in zip(paths, wanted):
            repo, f = spec.split(":")
            self.assertEqual(path, os.path.join(self.snapshot(repo), f))
            self.assertEqual(read(path), self.server.repos[repo].files[f])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--example", required=True)
    parser.add_argument("--venv", default="")
    ARGS, rest = parser.parse_known_args()
    for name in ("binary", "data", "example", "venv"):
        if getattr(ARGS, name):
            setattr(ARGS, name, os.path.abspath(getattr(ARGS, name)))
    unittest.main(argv=[sys.argv[0], *rest])
