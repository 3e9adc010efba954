#!/usr/bin/env bash
# Runs the root module's tests, and the soak, built for arm64 with -race, in
# a full-system arm64 guest: a Debian arm64 kernel booted by
# qemu-system-aarch64 (TCG). The race runtime needs a 48-bit virtual address
# space, which qemu-user (39 bits) lacks and a real arm64 kernel gives.
#
# The packages' tests are built in the shard builds asked for (by default
# both: default, and tag moqstats_purego), packed with their package
# sources into one initramfs, and run in one boot per CPU model: by default
# "max" (ARMv8 with LSE atomics, so Go's atomics are single LSE
# instructions) and "cortex-a72" (ARMv8.0, no LSE, so they are LL/SC
# loops). The run fails when a test fails, when the race detector reports,
# or when the guest does not finish in time.
#
# Usage:
#   .ci/arm64-race.sh            the suite (and the soak), as the environment says
#   .ci/arm64-race.sh selfcheck  one boot running the planted data race
#                                (internal/race); succeeds only if the run
#                                fails with the race detector's report
#
# Environment, with defaults (the defaults are the full matrix that make
# test-arm64-race runs; make test-arm64-race-ci sets a subset):
#   ARM64_RACE_PKGS=./...      packages whose tests run (go list patterns, space-separated)
#   ARM64_RACE_BUILDS="default purego"   shard builds: default, purego (tag moqstats_purego)
#   ARM64_RACE_CPUS="max,pauth-impdef=on cortex-a72"  qemu -cpu values, one boot each
#   ARM64_RACE_SHORT=          set to 1 to run the tests with -test.short
#   ARM64_RACE_SOAK=5s         soak duration per build and CPU model (0 skips it;
#                              otherwise ARM64_RACE_PKGS must include ./internal/soak)
#   ARM64_RACE_BOOT_TIMEOUT=2400   seconds one boot may take before it fails (full boots took 13-25 min)
#   ARM64_RACE_TEST_TIMEOUT=10m    -test.timeout of each test binary
#   ARM64_RACE_MEM=2048 ARM64_RACE_SMP=2   guest memory (MiB) and CPUs
#   ARM64_RACE_CACHE=$HOME/.cache/moqstats-arm64-race   guest kernel and busybox
#   ARM64_RACE_KEEP=           set to keep the work directory (binaries, initramfs, console logs)
#
# Debian only. Host packages that are missing are installed with apt-get
# (as root); the guest's kernel and busybox are arm64 .debs fetched with
# apt-get download and cached, extracted, in ARM64_RACE_CACHE. The guest's
# libc is the cross toolchain's, the one the test binaries link against.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$root"

mode=${1:-suite}
case $mode in suite | selfcheck) ;; *) echo "usage: $0 [selfcheck]" >&2; exit 2 ;; esac

pkgs=${ARM64_RACE_PKGS:-./...}
builds=${ARM64_RACE_BUILDS:-default purego}
cpus=${ARM64_RACE_CPUS:-max,pauth-impdef=on cortex-a72}
short=${ARM64_RACE_SHORT:-}
soak=${ARM64_RACE_SOAK:-5s}
boot_timeout=${ARM64_RACE_BOOT_TIMEOUT:-2400}
test_timeout=${ARM64_RACE_TEST_TIMEOUT:-10m}
mem=${ARM64_RACE_MEM:-2048}
smp=${ARM64_RACE_SMP:-2}
cache=${ARM64_RACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moqstats-arm64-race}
go=${GO:-go}
sysroot=/usr/aarch64-linux-gnu

say() { printf 'arm64-race: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }
elapsed() { say "$1 took $((SECONDS - $2))s"; }

[[ -n ${pkgs// /} ]] || die "ARM64_RACE_PKGS is empty"
[[ -n ${cpus// /} ]] || die "ARM64_RACE_CPUS is empty"
[[ -n ${builds// /} ]] || die "ARM64_RACE_BUILDS is empty"
for b in $builds; do
	case $b in default | purego) ;; *) die "ARM64_RACE_BUILDS: unknown build $b (want default, purego)" ;; esac
done
case $short in '' | 0) short= ;; 1) ;; *) die "ARM64_RACE_SHORT: want 1 or empty, got $short" ;; esac
[[ $boot_timeout =~ ^[1-9][0-9]*$ ]] || die "ARM64_RACE_BOOT_TIMEOUT: want seconds, got $boot_timeout"

work=$(mktemp -d "${TMPDIR:-/tmp}/moqstats-arm64-race.XXXXXX")
keep_work=${ARM64_RACE_KEEP:-}
trap '[[ -n $keep_work ]] || rm -rf "$work"' EXIT

# --- host packages and guest pieces -----------------------------------------

apt_updated=
apt_update() {
	[[ -n $apt_updated ]] && return
	say "apt-get update"
	apt-get update -qq
	apt_updated=1
}

ensure_host_packages() {
	local missing=()
	command -v qemu-system-aarch64 >/dev/null || missing+=(qemu-system-arm)
	command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
	[[ -f $sysroot/include/stdio.h && -f $sysroot/lib/libc.so.6 ]] || missing+=(libc6-dev-arm64-cross)
	command -v cpio >/dev/null || missing+=(cpio)
	((${#missing[@]} == 0)) && return
	say "installing ${missing[*]}"
	apt_update
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# guest_file PACKAGE MEMBER: prints the path of MEMBER (a path in the
# package, glob allowed) extracted from the arm64 PACKAGE at the version apt
# knows now, fetching it when the cache lacks that version. Fails when apt
# does not know the package or cannot fetch that version.
guest_file() {
	local pkg=$1 member=$2 version out tmp
	version=$(apt-cache show --no-all-versions "$pkg:arm64" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
	[[ -n $version ]] || return 1
	out=$cache/$pkg-${version//[^A-Za-z0-9.+~-]/_}
	if [[ ! -s $out ]]; then
		say "fetching $pkg:arm64 $version" >&2
		tmp=$(mktemp -d "$work/deb.XXXXXX")
		(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg:arm64=$version") || return 1
		mkdir -p "$cache"
		dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -xO --wildcards "$member" >"$out.tmp" || return 1
		[[ -s $out.tmp ]] || { say "$pkg:arm64 $version has no $member" >&2; return 1; }
		mv "$out.tmp" "$out"
		rm -rf "$tmp"
	fi
	printf '%s\n' "$out"
}

# fetch_guest_pieces sets kernel and busybox to the guest's kernel image
# (whichever one linux-image-arm64 depends on now) and static busybox.
fetch_guest_pieces() {
	local image
	image=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null |
		awk '/Depends: linux-image-/ { sub(/:arm64$/, "", $2); print $2; exit }')
	[[ -n $image ]] || return 1
	kernel=$(guest_file "$image" './boot/vmlinuz-*') || return 1
	busybox=$(guest_file busybox-static ./bin/busybox) || return 1
	say "guest kernel $image ($(basename "$kernel")), $(basename "$busybox")"
}

ensure_guest_pieces() {
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		say "dpkg --add-architecture arm64"
		dpkg --add-architecture arm64
		apt_updated=
		apt_update
	fi
	# Stale package lists may name a version the mirror no longer has.
	fetch_guest_pieces ||
		{ [[ -z $apt_updated ]] && apt_update && fetch_guest_pieces; } ||
		die "cannot fetch the guest's kernel and busybox (arm64 packages) with apt"
}

# --- test binaries ------------------------------------------------------------

cross() { GOOS=linux GOARCH=arm64 CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc "$go" "$@"; }

# build NAME TAGS [PACKAGE...]: builds the race test binaries of the
# packages (default: every package of the module) that have test files,
# into $work/root/t/NAME, and appends "test NAME <dir> <binary>" lines to
# the manifest. go test -c -o DIR/ names a binary after the last element of
# its import path and refuses two packages that share one, so packages are
# built in groups within which those names are distinct.
build() {
	local name=$1 tags=$2 list ip dir base g n=0
	shift 2
	local -A taken=()
	local -a groups=() ips=() dirs=() group_of=()
	list=$(cross list -tags "$tags" -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' "${@:-./...}")
	while read -r ip dir; do
		[[ -n $ip ]] || continue
		base=${ip##*/}
		g=0
		while [[ -n ${taken[$g/$base]:-} ]]; do g=$((g + 1)); done
		taken[$g/$base]=1
		groups[g]+=" $ip"
		ips+=("$ip") dirs+=("$dir") group_of+=("$g")
	done <<<"$list"
	((${#ips[@]} > 0)) || die "no package with tests among ${*:-./...}"
	for g in "${!groups[@]}"; do
		# shellcheck disable=SC2086 # import paths have no spaces
		cross test -race -c -tags "$tags" -ldflags='-s -w' -o "$work/bin/$name/$g/" ${groups[g]}
	done
	mkdir -p "$work/root/t/$name"
	for n in "${!ips[@]}"; do
		local bin=$work/bin/$name/${group_of[n]}/${ips[n]##*/}.test rel=${dirs[n]#"$root"}
		[[ -f $bin ]] || die "go test -c wrote no $bin for ${ips[n]}"
		rel=.${rel:+$rel}
		mv "$bin" "$work/root/t/$name/$n.test"
		echo "test $name $rel /t/$name/$n.test" >>"$work/root/manifest"
		copy_package_dir "${dirs[n]}" "$rel"
	done
	say "$name build: test binaries of ${#ips[@]} packages"
}

# copy_package_dir DIR REL: the package's own files and testdata, where
# its tests run in the guest, so tests that read them work.
copy_package_dir() {
	local dst=$work/root/src/$2
	# A marker, not the directory: the root package's is src itself, which
	# exists before anything is copied into it.
	[[ -e $dst/.copied ]] && return
	mkdir -p "$dst"
	find "$1" -maxdepth 1 -type f -exec cp -t "$dst" {} +
	[[ -d $1/testdata ]] && cp -r "$1/testdata" "$dst/"
	# The root package's README test reads the test files of the packages
	# the README's bad-input table names, wherever they live.
	if [[ $2 == . ]]; then
		(cd "$1" && find . -name node_modules -prune -o -name '*_test.go' -print0 |
			xargs -0 cp --parents -t "$dst")
	fi
	touch "$dst/.copied"
}

# --- the guest ----------------------------------------------------------------

# The guest's /init. Each manifest line is "KIND BUILD DIR BINARY"; each run
# prints "@@ RUN", then "@@ PASS" or "@@ FAIL", and the whole boot ends with
# "@@ DONE pass" or "@@ DONE fail", which the host reads from the console.
write_init() {
	cat >"$work/root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/tmp TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
# Loopback, for the tests that serve HTTP on 127.0.0.1.
ip link set lo up
. /harness.env
echo "@@ CPU $(grep -m1 '^Features' /proc/cpuinfo)"
failed=0
ran=0
while read -r kind build dir bin; do
	ran=$((ran + 1))
	echo "@@ RUN $kind $build $dir"
	start=$(date +%s)
	cd "/src/$dir"
	if [ "$kind" = soak ]; then
		"$bin" -test.run '^TestSoak$' -test.v -test.timeout="$TEST_TIMEOUT" -soak="$SOAK" </dev/null
	else
		# shellcheck disable=SC2086 # SHORT is empty or one flag
		"$bin" -test.v -test.timeout="$TEST_TIMEOUT" $SHORT </dev/null
	fi
	rc=$?
	cd /
	took=$(($(date +%s) - start))s
	if [ "$rc" -eq 0 ]; then
		echo "@@ PASS $kind $build $dir $took"
	else
		failed=$((failed + 1))
		echo "@@ FAIL $kind $build $dir $took exit=$rc"
	fi
done </manifest
if [ "$ran" -gt 0 ] && [ "$failed" -eq 0 ]; then
	echo "@@ DONE pass $ran"
else
	echo "@@ DONE fail $failed of $ran"
fi
sync
poweroff -f
EOF
	chmod 755 "$work/root/init"
}

pack() {
	local r=$work/root lib
	mkdir -p "$r/bin" "$r/lib" "$r/proc" "$r/sys" "$r/dev" "$r/tmp"
	cp "$busybox" "$r/bin/busybox"
	chmod 755 "$r/bin/busybox"
	write_init
	{
		printf 'TEST_TIMEOUT=%q\nSOAK=%q\nSHORT=%q\n' "$test_timeout" "$soak" "${short:+-test.short}"
		[[ $mode == selfcheck ]] && printf 'export MOQSTATS_PLANTED_RACE=1\n'
	} >"$r/harness.env"
	# The dynamic loader and every library a test binary needs, from the
	# cross toolchain the binaries were linked against.
	cp -L "$sysroot/lib/ld-linux-aarch64.so.1" "$r/lib/"
	for lib in $(aarch64-linux-gnu-readelf -d "$r"/t/*/*.test | awk '/NEEDED/ { gsub(/[][]/, "", $NF); print $NF }' | sort -u); do
		[[ -f $sysroot/lib/$lib ]] || die "test binaries need $lib, which $sysroot/lib lacks"
		cp -L "$sysroot/lib/$lib" "$r/lib/"
	done
	(cd "$r" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"
	say "initramfs: $(($(stat -c %s "$work/initramfs.cpio") / 1048576)) MiB"
}

# boot CPU: boots the guest on qemu CPU model CPU, showing the guest's
# markers as they come, and leaves the console in $work/console-<model>.log.
# Returns non-zero when the run did not pass.
boot() {
	local cpu=$1 model=${1%%,*} log rc=0 start=$SECONDS
	log=$work/console-$model.log
	say "booting cpu=$cpu"
	set +e
	timeout -k 10 "$boot_timeout" qemu-system-aarch64 -M virt -cpu "$cpu" -smp "$smp" -m "$mem" \
		-nographic -nic none -no-reboot -accel tcg,thread=multi \
		-kernel "$kernel" -initrd "$work/initramfs.cpio" \
		-append 'console=ttyAMA0 quiet panic=-1' </dev/null 2>&1 |
		sed -u 's/\r$//' | tee "$log" | grep --line-buffered '^@@ ' | sed -u 's/^@@ /  /'
	local qemu_rc=${PIPESTATUS[0]}
	set -e
	elapsed "boot cpu=$model" "$start"

	if ((qemu_rc == 124 || qemu_rc == 137)); then
		say "FAIL: cpu=$model: the guest did not finish within ${boot_timeout}s; its last console lines:"
		tail -n 60 "$log"
		return 1
	fi
	((qemu_rc == 0)) || { say "FAIL: cpu=$model: qemu exited $qemu_rc"; tail -n 60 "$log"; return 1; }
	if ! grep -q '^@@ DONE ' "$log"; then
		say "FAIL: cpu=$model: the guest stopped before it finished; its last console lines:"
		tail -n 60 "$log"
		return 1
	fi
	check_cpu_features "$model" "$log" || rc=1
	# Soak runs pass their summary through; show it.
	awk '/^@@ RUN soak /{on=1} on{print "  | " $0} /^@@ (PASS|FAIL) soak /{on=0}' "$log"
	count_tests "$model" "$log"
	if grep -q '^@@ FAIL ' "$log" || grep -q 'WARNING: DATA RACE' "$log" || ! grep -q '^@@ DONE pass' "$log"; then
		say "FAIL: cpu=$model; output of the failing runs, less the passing tests' lines:"
		awk '/^@@ RUN /{buf=""; bad=0}
			/^(=== (RUN|PAUSE|CONT|NAME) |[[:space:]]*--- (PASS|SKIP): )/{next}
			{buf=buf $0 "\n"}
			/WARNING: DATA RACE/{bad=1}
			/^@@ FAIL /{bad=1}
			/^@@ (PASS|FAIL) /{if (bad) printf "%s", buf; buf=""}' "$log"
		return 1
	fi
	return "$rc"
}

# count_tests MODEL LOG: counts the top-level tests (and examples) that
# passed, failed and were skipped in the boot, adds them to the totals, and
# names the skipped ones.
total_passed=0 total_failed=0 total_skipped=0
count_tests() {
	local passed failed skipped
	passed=$(grep -c '^--- PASS: ' "$2" || true)
	failed=$(grep -c '^--- FAIL: ' "$2" || true)
	skipped=$(grep -c '^--- SKIP: ' "$2" || true)
	total_passed=$((total_passed + passed)) total_failed=$((total_failed + failed)) total_skipped=$((total_skipped + skipped))
	say "cpu=$1: $passed passed, $failed failed, $skipped skipped"
	((skipped == 0)) || say "cpu=$1: skipped:$(awk '/^--- SKIP: /{n[$3]++} END{for (t in n) printf " %s (x%d)", t, n[t]}' "$2")"
}

# check_cpu_features MODEL LOG: the named CPU models must (max) or must not
# (cortex-a72) have LSE atomics, so both of Go's atomic code paths run.
check_cpu_features() {
	local features
	features=$(sed -n 's/^@@ CPU Features[[:space:]]*: //p' "$2")
	case " $features " in *" atomics "*) say "cpu=$1: LSE atomics" ;; *) say "cpu=$1: no LSE atomics (LL/SC)" ;; esac
	case $1 in
	max) [[ " $features " == *" atomics "* ]] || { say "FAIL: cpu=max lacks LSE atomics"; return 1; } ;;
	cortex-a72) [[ " $features " != *" atomics "* ]] || { say "FAIL: cpu=cortex-a72 has LSE atomics"; return 1; } ;;
	esac
}

# --- main -----------------------------------------------------------------------

start=$SECONDS
ensure_host_packages
ensure_guest_pieces
elapsed "host packages and guest pieces" "$start"

start=$SECONDS
mkdir -p "$work/root/src"
: >"$work/root/manifest"
if [[ $mode == selfcheck ]]; then
	build default "" ./internal/race
else
	read -ra pkg_list <<<"$pkgs"
	for b in $builds; do
		case $b in
		default) build default "" "${pkg_list[@]}" ;;
		purego)
			# Only the packages whose test binaries the tag changes: the
			# others' purego binaries would be the default ones again.
			purego_pkgs=$(GOOS=linux GOARCH=arm64 CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc GO=$go .ci/purego-pkgs "${pkg_list[@]}") ||
				die "cannot tell which packages the moqstats_purego tag changes"
			if [[ -z $purego_pkgs ]]; then
				say "purego build: no package among $pkgs differs from the default build; skipped"
			else
				# shellcheck disable=SC2086 # import paths, one a line
				build purego moqstats_purego $purego_pkgs
			fi
			;;
		esac
	done
	# The soak: its TestSoak runs when -soak is nonzero.
	if [[ ! $soak =~ ^0[a-z]*$ ]]; then
		for b in $builds; do
			line=$(grep -E "^test $b \./internal/soak " "$work/root/manifest") ||
				die "ARM64_RACE_SOAK=$soak, but internal/soak has no test binary in the $b build (ARM64_RACE_PKGS=$pkgs)"
			echo "soak ${line#test }" >>"$work/root/manifest"
		done
	fi
fi
pack
elapsed "build and pack" "$start"

if [[ $mode == selfcheck ]]; then
	cpu=${cpus%% *}
	if boot "$cpu"; then
		keep_work=1
		die "self-check: the run passed with the planted data race enabled (console log kept in $work)"
	fi
	grep -q 'WARNING: DATA RACE' "$work/console-${cpu%%,*}.log" ||
		{ keep_work=1; die "self-check: the run failed, but without a race report (console log kept in $work)"; }
	say "self-check passed: the planted data race was reported and failed the run"
	exit 0
fi

failed=
for cpu in $cpus; do
	boot "$cpu" || failed+=" ${cpu%%,*}"
done
say "ran the race tests of $pkgs${short:+ (-test.short)}, builds: $builds; soak: $soak; on cpu: $cpus"
if [[ -n $failed ]]; then
	keep_work=1
	say "$total_passed passed, $total_failed failed, $total_skipped skipped"
	die "failed on cpu:$failed (console logs kept in $work)"
fi
say "$total_passed passed, $total_failed failed, $total_skipped skipped"
