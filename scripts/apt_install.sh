# Sourced by the install_*_deps.sh scripts: install Debian packages as root, or say
# what to install and exit 1.
#   apt_install LABEL HINT PACKAGE...
# LABEL starts every message; HINT says what the packages are, for a system without
# apt-get. Another apt-get (an unattended upgrade, a second checkout's install) may hold
# the lock for a while: it is waited for rather than failed on.
apt_install() {
    local label=$1 hint=$2
    shift 2
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "$label: missing $*" >&2
        echo "install them as root: apt-get update && apt-get install -y $*" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$label: apt-get not found; install $* ($hint) with this system's package manager" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update
    apt-get -o DPkg::Lock::Timeout=300 install -y "$@"
}
