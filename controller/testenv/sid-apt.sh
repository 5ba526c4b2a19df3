# Sourced by the install scripts: a private apt configuration for Debian sid under "$1" (its own
# sources list, state, status file and cache), so the system's apt sources and dpkg database are
# never touched. Sets APT_OPTS; use as `apt-get "${APT_OPTS[@]}" ...`.
sid_apt_setup() {
    local work="$1" mirror="${WASMPLUG_SID_MIRROR:-http://deb.debian.org/debian}"
    mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial"
    : >"$work/state/status"
    echo "deb $mirror sid main" >"$work/sources.list"
    APT_OPTS=(
        -o "Dir::State=$work/state"
        -o "Dir::State::status=$work/state/status"
        -o "Dir::Etc::SourceList=$work/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::Etc::Preferences=/dev/null"
        -o "Dir::Etc::PreferencesParts=/dev/null"
        -o "Dir::Cache=$work/cache"
        -o "APT::Install-Recommends=false"
        -o "APT::Install-Suggests=false"
        -o "APT::Sandbox::User=root"
        -o "Debug::NoLocking=true"
    )
}
