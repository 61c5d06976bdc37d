"""A headless browser for the `browser` check, driven over the Chrome DevTools Protocol (CDP).

Owns: finding the browser (discover.py), starting it and always killing its whole process tree
(process.py), the two CDP transports (a pipe on Linux/macOS, a websocket on Windows: transport.py,
websocket.py), the CDP connection (cdp.py), one page visit with its screenshot (page.py), and one
browser shared by a class (shared.py).
May import: labctl.errors.

Why an in-tree client (standard library only) and no library:
- No browser download: Playwright's and Selenium Manager's downloads fail without a route to
  their servers (as on this project's test machines); every instructor already has Chrome, Edge
  or Chromium. So the browser is the system's, whatever its version.
- Playwright drives the system browser (`executable_path`) but is a 54 MB wheel that brings its
  own Node runtime, and it is pinned to a newer Chromium than Debian's (its docs: "no guarantee"
  with another version). Selenium needs the chromedriver of the browser's exact version and does
  not see failed requests. The check needs four CDP domains (Target, Page, Runtime, Network), which
  Chromium has kept stable for years: a few hundred lines of ours against a second runtime or a
  version lock-step.
- `chromium --headless --screenshot` alone cannot wait for "rendered": it shot the loading skeleton
  or the hero without its image in 6 of 19 tries.
- Measured with this client on a 2-core machine (bench/bench_browser.py, Chromium 156): start
  0.3 s and close 0.2 s over either transport; one page of a dumbflix-like app 2.2 s from the
  request to the screenshot; ten pages in one browser 20 s one after another (0.50 GB PSS at the peak),
  7.4-7.8 s with 4 windows at a time (the bound shared.py uses; 0.59 GB), 5.0-5.4 s with 10
  (0.78 GB); every page rendered and shot.
"""
