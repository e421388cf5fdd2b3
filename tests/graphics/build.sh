#!/bin/bash
# build.sh OUT
#
# Builds OUT/kvmfr-egl_import (tests/graphics/egl_import.c, linked against
# glvnd's libEGL and libGLESv2: headers from the host's libegl-dev and
# libgles-dev) and prepares the graphics root (prepare-root.sh, cached);
# writes OUT/graphics.env with GFX_BIN and GFX_ROOT.  The build and the
# root's preparation log to stdout/stderr.
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
for h in EGL/egl.h EGL/eglext.h GLES3/gl3.h GLES2/gl2ext.h; do
	if [ ! -e "/usr/include/$h" ]; then
		echo "build: /usr/include/$h is missing (packages libegl-dev, libgles-dev)" >&2
		exit 1
	fi
done
${CC:-gcc} -O2 -Wall -Wextra -Werror -I"$here/../.." -I"$here/../common" \
	-I"$here/../edu" -I"$here/../guest" -o "$out/kvmfr-egl_import" \
	"$here/egl_import.c" -lEGL -lGLESv2 -ldl
root=$("$here/prepare-root.sh" "${KVMFR_EGL_SUITE:-bookworm-backports}")
cat >"$out/graphics.env" <<EOT
GFX_BIN='$out/kvmfr-egl_import'
GFX_ROOT='$root'
GFX_DESC='$(cat "$root/.complete")'
EOT
