#!/bin/sh
# Fetch LibreOffice's Java NLPSolver extension (DEPS, SCO) and the Java-UNO runtime it needs, WITHOUT installing
# any package: on Debian, libreoffice-nlpsolver drags the GUI LibreOffice in place of libreoffice-*-nogui.
#
#     benchmarks/get_nlpsolver.sh [DEST]        # DEST defaults to /tmp/xlcollab-nlpsolver
#     .venv/bin/python benchmarks/bench_collab.py --nlpsolver-oxt DEST/nlpsolver.oxt --solvers deps,sco --timeout 180
#
# Only `apt-get download` (Debian's own repositories) and `dpkg -x`; nothing under /usr is written. It makes:
#   DEST/nlpsolver.oxt   the extension folder of libreoffice-nlpsolver zipped up; bench_collab.py adds it to its
#                        private profile through the ExtensionManager (`unopkg add` without --shared refuses to
#                        run as root; --shared would write under /usr)
#   DEST/program/        an overlay of /usr/lib/libreoffice/program: a symlink to every entry there, plus what
#                        the -nogui install lacks for Java (ure-java: libjava_uno.so, libjuh*.so, libjpipe.so,
#                        jvmfwk3rc, javavendors.xml, JREProperties.class; the UNO jars in program/classes).
#                        bench_collab.py puts it first on LD_LIBRARY_PATH for its own soffice only. The UNO
#                        runtime finds its bridges (libjava_uno.so), unorc and jvmfwk3rc beside the libraries it
#                        loaded, so it finds them here; unorc's ${ORIGIN}/classes is then program/classes here.
# The package versions must match the installed LibreOffice (apt picks the candidate = the installed version).
set -eu
DEST=${1:-/tmp/xlcollab-nlpsolver}
LO=/usr/lib/libreoffice/program
[ -d "$LO" ] || { echo "no LibreOffice at $LO" >&2; exit 1; }
mkdir -p "$DEST/debs" "$DEST/root"
cd "$DEST/debs"
PKGS="libreoffice-nlpsolver ure-java liblibreoffice-java libunoloader-java"
# apt-get download drops privileges to _apt; a root-owned folder it cannot write to only costs a warning
apt-get download $PKGS
for deb in ./*.deb; do dpkg -x "$deb" "$DEST/root"; done
installed=$(dpkg-query -W -f='${Version}' libreoffice-core-nogui 2>/dev/null ||
            dpkg-query -W -f='${Version}' libreoffice-core)
got=$(dpkg-deb -f ./ure-java_*.deb Version)
[ "$installed" = "$got" ] || echo "WARNING: LibreOffice $installed installed, ure-java $got downloaded" >&2

# 1. the extension, as an .oxt (a zip of the extension folder)
EXT="$DEST/root/usr/lib/libreoffice/share/extensions/nlpsolver"
rm -f "$DEST/nlpsolver.oxt"
(cd "$EXT" && zip -qr "$DEST/nlpsolver.oxt" .)

# 2. the program overlay
P="$DEST/program"
rm -rf "$P"
mkdir -p "$P/classes"
for f in "$LO"/* ; do
    name=$(basename "$f")
    [ "$name" = classes ] || ln -s "$f" "$P/$name"
done
for f in "$DEST"/root/usr/lib/libreoffice/program/*; do
    [ -d "$f" ] && continue
    rm -f "$P/$(basename "$f")"
    cp -L "$f" "$P/"
done
for jar in ridl jurt juh unoloader libreoffice unoil java_uno; do
    cp -L "$DEST/root/usr/share/java/$jar.jar" "$P/classes/$jar.jar"
done
echo "$DEST/nlpsolver.oxt"
echo "$P"
