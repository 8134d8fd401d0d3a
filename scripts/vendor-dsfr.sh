#!/usr/bin/env bash
# Refreshes the vendored DSFR subset in assets/dsfr from the npm package @gouvfr/dsfr:
# the minified stylesheet, the fonts and icons it references, and the licence.
# Usage: scripts/vendor-dsfr.sh [VERSION]   (default: the version vendored now, see below)
set -euo pipefail
version=${1:-1.15.3}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "@gouvfr/dsfr@$version" >/dev/null
tar xzf gouvfr-dsfr-*.tgz
cd package/dist
rm -rf "$top/assets/dsfr"
mkdir -p "$top/assets/dsfr"
cp dsfr.min.css "$top/assets/dsfr/"
cp ../LICENSE.md "$top/assets/dsfr/LICENSE.md"
# Only the files the stylesheet points at.
grep -o 'url([^)]*)' dsfr.min.css | grep -v 'data:' | sed 's/url(//;s/)//;s/"//g' | sort -u | while read -r file; do
  mkdir -p "$top/assets/dsfr/$(dirname "$file")"
  cp "$file" "$top/assets/dsfr/$file"
done
echo "DSFR $version vendored into assets/dsfr ($(find "$top/assets/dsfr" -type f | wc -l) files)."
