#!/usr/bin/env python3
"""Drives the dashboard in Debian's headless Chromium (selenium + chromium-driver).

Run by observe_e2e_test (DashboardInChromium), which starts a TLS farm, makes an
admin and a viewer token, submits a job whose two build cells wait for gate
files, and passes everything here. Exits non-zero with the reason on the first
failed check. Any request the page makes to another origin fails the run.
"""
import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

XSS = "<img src=x onerror=window.pwned=1>"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def spki_hash(cert_file):
    """base64 SHA-256 of the certificate's public key: Chromium trusts exactly that key."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_file, "-noout", "-pubkey"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         check=True, capture_output=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                            check=True, capture_output=True).stdout
    return subprocess.run(["base64", "-w0"], input=digest, check=True,
                          capture_output=True).stdout.decode().strip()


def no_horizontal_scroll(driver, where):
    w = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    if w[0] > w[1]:
        fail(f"{where}: horizontal scroll ({w[0]} px of content in {w[1]} px)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--server-cert", required=True)
    ap.add_argument("--admin-token", required=True)
    ap.add_argument("--viewer-token")
    ap.add_argument("--job", required=True)
    ap.add_argument("--gate-dir")
    ap.add_argument("--big-task", help="a task whose log is 50 MB: the page must get only its tail")
    ap.add_argument("--diff-job", help="a schedule's run whose newly failing test is named XSS")
    ap.add_argument("--out", required=True)
    # Artifact mode: download TASK's artifact NAME from its page; its bytes must equal FILE's.
    ap.add_argument("--artifact-task")
    ap.add_argument("--artifact-name")
    ap.add_argument("--artifact-expect")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--disable-default-apps",
                 "--ignore-certificate-errors-spki-list=" + spki_hash(a.server_cert),
                 "--window-size=1366,768"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # A fresh directory: an earlier run's file would make Chromium save "out (1).bin".
    downloads = tempfile.mkdtemp(prefix="musafarm-downloads-")
    opts.add_experimental_option("prefs", {"download.default_directory": downloads,
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": downloads})
    wait = WebDriverWait(driver, 60, poll_frequency=0.1)
    try:
        if a.artifact_task:
            download(driver, wait, a, downloads)
        else:
            run(driver, wait, a)
        check_origins(driver, a.url)
    finally:
        driver.quit()
        shutil.rmtree(downloads, ignore_errors=True)
    print("dashboard: every check passed")


def check_origins(driver, base):
    seen = 0
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") != "Network.requestWillBeSent":
            continue
        url = msg["params"]["request"]["url"]
        seen += 1
        if not (url == base or url.startswith(base + "/")):
            fail(f"a request left the coordinator's origin: {url}")
    if seen == 0:
        fail("no requests were recorded (performance log empty)")


def login(driver, wait, a):
    driver.get(a.url + "/")
    token = wait.until(lambda d: d.find_element(By.ID, "token"))
    token.send_keys(a.admin_token)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#jobs tbody tr"))


def download(driver, wait, a, downloads):
    """Clicks the artifact's link on its task page and compares the file's bytes."""
    login(driver, wait, a)
    driver.get(a.url + "/#/task/" + a.artifact_task)
    link = wait.until(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, "#artifacts a")
                                 if e.text == a.artifact_name])[0]
    link.click()
    path = os.path.join(downloads, a.artifact_name)
    wait.until(lambda d: os.path.exists(path) and not os.path.exists(path + ".crdownload"))
    with open(path, "rb") as got, open(a.artifact_expect, "rb") as want:
        g, w = got.read(), want.read()
    if g != w:
        fail(f"the downloaded artifact differs: {len(g)} bytes, expected {len(w)}")
    print(f"artifact {a.artifact_name}: {len(g)} bytes, identical")


def run(driver, wait, a):
    job = a.job
    login(driver, wait, a)
    cookies = {c["name"]: c for c in driver.get_cookies()}
    s = cookies.get("mf_session")
    if not s or not s.get("httpOnly") or s.get("sameSite") != "Strict" or not s.get("secure"):
        fail(f"session cookie not HttpOnly, SameSite=Strict and Secure: {s}")
    if driver.execute_script("return document.cookie").find("mf_session") >= 0:
        fail("the session token is readable by scripts")
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr td:nth-child(2)")]
    if XSS not in names:
        fail(f"the job's name is not shown as text: {names}")
    # Who is active (issue 20), as `musafarm coordinators`: on SQLite the one
    # coordinator, active.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#coordinators tbody tr"))
    roles = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#coordinators tbody tr td:nth-child(2)")]
    if roles != ["active"]:
        fail(f"the coordinators view does not list the one coordinator as active: {roles}")
    driver.execute_script("window.marker = 42")  # gone if the page reloads
    driver.save_screenshot(os.path.join(a.out, "jobs-1366x768.png"))
    no_horizontal_scroll(driver, "jobs page at 1366x768")

    # The submitter filter is the coordinator's (ListJobs by submitter): the
    # form asks /api/jobs?user=..., an exact name, not a substring in the page.
    rows = "#jobs tbody tr"
    submitters = [e.text for e in driver.find_elements(By.CSS_SELECTOR, rows + " td:nth-child(4)")]
    submitter = submitters[0]
    for who, want in ((submitter, submitters.count(submitter)), (submitter[:-1], 0), ("nobody", 0)):
        box = driver.find_element(By.ID, "f-submitter")
        box.clear()
        box.send_keys(who)
        box.submit()
        asked = "user=" + urllib.parse.quote_plus(who)
        try:
            wait.until(lambda d: any(n.endswith(asked) for n in d.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)"))
                and len(d.find_elements(By.CSS_SELECTOR, rows)) == want)
        except Exception:
            fail(f"the submitter filter {who!r} did not list {want} job(s) from /api/jobs?...{asked}")
    driver.get(a.url + "/")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, rows))

    # The job page: a running cell turns green without a reload.
    driver.get(a.url + "/#/job/" + job)
    driver.execute_script("window.marker = 42")
    first = f"{job}/dev-3.10/build"
    second = f"{job}/dev-3.11/build"
    sel = lambda t: f'#grid a[data-task="{t}"]'
    wait.until(lambda d: "st-running" in d.find_element(By.CSS_SELECTOR, sel(first)).get_attribute("class"))
    if driver.find_element(By.ID, "job-name").text.find(XSS) < 0:
        fail("the job page does not show the name as text")
    open(os.path.join(a.gate_dir, "gate-3.10"), "w").close()
    wait.until(lambda d: "st-succeeded" in d.find_element(By.CSS_SELECTOR, sel(first)).get_attribute("class"))
    if driver.execute_script("return window.marker") != 42:
        fail("the job page reloaded")
    driver.set_window_size(1366, 768)
    driver.save_screenshot(os.path.join(a.out, "job-1366x768.png"))
    no_horizontal_scroll(driver, "job page at 1366x768")

    # A running task's log: a line appears live, colours as spans, markup as text.
    driver.get(a.url + "/#/task/" + second)
    driver.execute_script("window.marker = 42")
    wait.until(lambda d: "waiting for the gate" in d.find_element(By.ID, "log").text)
    open(os.path.join(a.gate_dir, "gate-3.11"), "w").close()
    wait.until(lambda d: "through the gate" in d.find_element(By.ID, "log").text)
    if driver.execute_script("return window.marker") != 42:
        fail("the task page reloaded")
    log_text = driver.find_element(By.ID, "log").text
    if XSS not in log_text:
        fail("the log line with markup is not shown as text")
    green = driver.find_elements(By.CSS_SELECTOR, "#log span.ansi-32")
    if not green or "green" not in green[0].text:
        fail("ANSI green was not rendered as a span")
    if "\x1b" in log_text or "[32m" in log_text:
        fail("raw escape codes in the log view")
    if driver.execute_script("return typeof window.pwned") != "undefined":
        fail("markup from the farm ran as HTML (window.pwned is set)")

    driver.set_window_size(390, 844)
    driver.get(a.url + "/#/job/" + job)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#grid a"))
    driver.save_screenshot(os.path.join(a.out, "job-390x844.png"))
    no_horizontal_scroll(driver, "job page at 390x844")
    driver.get(a.url + "/#/task/" + second)
    wait.until(lambda d: "through the gate" in d.find_element(By.ID, "log").text)
    driver.save_screenshot(os.path.join(a.out, "task-390x844.png"))
    no_horizontal_scroll(driver, "task page at 390x844")
    driver.set_window_size(1366, 768)

    # State-changing calls: a POST without the CSRF token is refused, from the page itself.
    status = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/cancel?id=' + arguments[0], {method: 'POST', credentials: 'same-origin'})"
        ".then(r => done(r.status), e => done(String(e)));", job)
    if status != 403:
        fail(f"a cancel without the CSRF token answered {status}, not 403")
    # A viewer with a valid CSRF token of its own is refused too.
    ctx = ssl.create_default_context(cafile=a.ca)
    auth = {"Authorization": "Bearer " + a.viewer_token}
    with urllib.request.urlopen(urllib.request.Request(a.url + "/api/session", headers=auth),
                                context=ctx) as r:
        viewer = json.load(r)
    if viewer.get("role") != "viewer" or viewer.get("may_cancel"):
        fail(f"viewer session: {viewer}")
    req = urllib.request.Request(a.url + "/api/cancel?id=" + job, method="POST",
                                 headers=dict(auth, **{"X-CSRF-Token": viewer["csrf"]}))
    try:
        urllib.request.urlopen(req, context=ctx)
        fail("a viewer's cancel was accepted")
    except urllib.error.HTTPError as e:
        if e.code != 403:
            fail(f"a viewer's cancel answered {e.code}, not 403")
    if driver.execute_script("return typeof window.pwned") != "undefined":
        fail("window.pwned is set")
    rerun(driver, wait, a)
    if a.diff_job:
        nightly_diff(driver, wait, a)
    if a.big_task:
        big_log(driver, wait, a)


def rerun(driver, wait, a):
    """The ended job's Rerun button: a new job, its page, "rerun of #N" linking back."""
    driver.get(a.url + "/#/job/" + a.job)
    try:
        button = wait.until(lambda d: d.find_elements(By.ID, "rerun"))[0]
    except Exception:
        fail("no Rerun button on the ended job's page")
    if driver.find_elements(By.ID, "rerun-failed"):
        fail("Rerun failed is offered for a job with nothing failed")
    button.click()
    try:
        wait.until(lambda d: d.execute_script("return location.hash") != "#/job/" + a.job
                   and d.find_elements(By.ID, "rerun-of"))
    except Exception:
        fail("clicking Rerun did not land on a new job's page: "
             + " ".join(e.text for e in driver.find_elements(By.ID, "action-error")))
    link = driver.find_element(By.ID, "rerun-of")
    if link.text != "rerun of #" + a.job:
        fail(f"the new job's page says {link.text!r}, not 'rerun of #{a.job}'")
    if driver.find_element(By.ID, "job-name").text.find(XSS) < 0:
        fail("the rerun's page does not show the name as text")
    driver.save_screenshot(os.path.join(a.out, "rerun-1366x768.png"))
    link.click()
    wait.until(lambda d: d.execute_script("return location.hash") == "#/job/" + a.job)
    if driver.execute_script("return typeof window.pwned") != "undefined":
        fail("window.pwned is set")


def nightly_diff(driver, wait, a):
    """A schedule's run lists its newly failing test, named with markup, as text."""
    driver.get(a.url + "/#/job/" + a.diff_job)
    items = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#diff-newly_failing li"))
    if not any(XSS in i.text for i in items):
        fail(f"the nightly diff does not name the newly failing test as text: {[i.text for i in items]}")
    if driver.find_elements(By.CSS_SELECTOR, "#nightly-diff img"):
        fail("the newly failing test's name became an element")
    if driver.execute_script("return typeof window.pwned") != "undefined":
        fail("a test name from the nightly diff ran as HTML (window.pwned is set)")
    print("nightly diff: the newly failing test is shown as text")
    # Its input, as `status` shows it: name, source, tree digest (short).
    job = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/job?id=' + arguments[0], {credentials: 'same-origin'})"
        ".then(r => r.json()).then(done, e => done(String(e)));", a.diff_job)
    inp = job["inputs"][0]
    want = f"{inp['name']}: {inp['source']}, tree {inp['tree']['sha256'][:12]}, {inp['files']} files"
    shown = [i.text for i in driver.find_elements(By.CSS_SELECTOR, "#inputs li")]
    if not any(s.startswith(want) for s in shown):
        fail(f"the job page does not show its input {want!r}: {shown}")
    print("job inputs: " + shown[0])


def big_log(driver, wait, a):
    """A 50 MB log: the page shows its last 256 KiB, and more only when asked."""
    driver.get(a.url + "/#/task/" + a.big_task)
    wait.until(lambda d: "LAST-LINE" in d.find_element(By.ID, "log").text)
    shown = driver.execute_script("return document.getElementById('log').textContent.length")
    if shown > 300 * 1024:
        fail(f"the page received {shown} characters of a 50 MB log, not just its tail")
    driver.find_element(By.ID, "more").click()
    wait.until(lambda d: d.execute_script(
        "return document.getElementById('log').textContent.length") > shown + 200 * 1024)
    more = driver.execute_script("return document.getElementById('log').textContent.length")
    if more > 600 * 1024:
        fail(f"'Show earlier output' brought {more - shown} characters, not one more piece")
    print(f"50 MB log: {shown} characters shown, {more} after one 'Show earlier output'")


if __name__ == "__main__":
    main()
