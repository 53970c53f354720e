# Sourced by constructs/gce-image.sh (takes a lock) and constructs/gc-roots.sh
# (drops the locks of images no longer planned). One lock per image file:
# <stateDir>/locks/upload-<store hash>, beside <stateDir>/gcroots/<store hash>.
# Both need flock(1); without it no lock is taken and none is dropped.

# upload_lock_dir GC_ROOT_DIR
upload_lock_dir() { echo "$(dirname "$1")/locks"; }

# take_upload_lock LOCK WHAT: holds an exclusive flock on LOCK (fd 9) until
# this process ends, however it ends; says (through the caller's log) that it
# waits for WHAT.
take_upload_lock() {
  local lock=$1 what=$2
  mkdir -p "$(dirname "$lock")"
  while :; do
    # Never write through a symlink left in stateDir (`exec 9>` on one
    # truncated its target): refuse one, create a missing file with
    # noclobber (O_EXCL, which does not follow symlinks) and open it
    # read-only (flock needs no write access). Only a missing one: noclobber
    # opens an existing non-file for writing, which a FIFO blocks forever.
    if [ ! -e "$lock" ] && [ ! -L "$lock" ]; then (set -C && : >"$lock") 2>/dev/null || true; fi
    if [ -L "$lock" ] || [ ! -f "$lock" ]; then
      log "$lock is not a regular file (a symlink?); remove it and run the step again"
      return 1
    fi
    exec 9<"$lock"
    if ! flock -n 9; then
      log "waiting for another step uploading $what"
      flock 9
    fi
    # drop_upload_locks unlinks a lock only while holding it: if it did so
    # while we waited, we hold a file no longer at this path; take the new one.
    [ /dev/fd/9 -ef "$lock" ] && return 0
    exec 9<&-
  done
}

# drop_upload_locks GC_ROOT_DIR KEEP...: removes the locks of store hashes not
# in KEEP, each only while holding it (a step holding or awaiting it keeps it).
drop_upload_locks() {
  local dir lock name wanted
  dir=$(upload_lock_dir "$1")
  shift
  command -v flock >/dev/null && [ -d "$dir" ] || return 0
  for lock in "$dir"/upload-*; do
    [ -f "$lock" ] && [ ! -L "$lock" ] || continue
    name=${lock##*/upload-}
    [[ $name =~ ^[0-9a-df-np-sv-z]{32}$ ]] || continue
    for wanted in "$@"; do
      [ "$name" = "$wanted" ] && continue 2
    done
    if (exec 8<"$lock" && flock -n 8 && rm -f "$lock"); then
      echo "gc-roots: dropped $lock (no planned image uses it)" >&2
    else
      echo "gc-roots: kept $lock (a step holds it)" >&2
    fi
  done
}
