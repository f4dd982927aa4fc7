# make browser-deps: Debian's Chromium and its chromedriver, for the browser test of `maa ui`
# (tests/infer/test_ui_browser.py, slow; CI runs it). Installs as root, otherwise prints the
# command. Nothing is downloaded at test time: Selenium drives /usr/bin/chromium.
BROWSER_APT := chromium chromium-driver

.PHONY: browser-deps

browser-deps:
	@missing=""; for p in $(BROWSER_APT); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "browser-deps: needs the Debian/Ubuntu packages:$$missing (no apt-get here; install them with your package manager)"; exit 1; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	else echo "browser-deps: not root; install the browser first:"; \
	  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing"; exit 1; fi; \
	echo "browser-deps: installing$$missing"; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing
