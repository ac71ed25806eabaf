#!/usr/bin/env bash
# node_cache_disk.sh [MOUNTPOINT]: put the node cache (the decoded train split every trial of a machine
# reads, datasets/node_cache.py) on the instance's NVMe instance store. Runs on the host of every node
# (cluster.yaml initialization_commands, before Ray starts the container); the worker containers mount
# MOUNTPOINT (default /mnt/avspot-cache) as $AVSPOT_CACHE_DIR. A g5.xlarge has one 250 GB NVMe SSD
# (several GB/s of reads) besides the gp3 root volume (500 MB/s as configured): a streamed float32
# SoccerNet split reads ~13 GB per epoch. The instance store is blank at every launch, so it is formatted
# here; a node without one (the m6i head) gets a folder on its root volume. Commands can be replaced
# for tests: LSBLK, FINDMNT, MOUNTPOINT_CMD, MKFS, MOUNT, SUDO, OWNER.
set -euo pipefail

mnt=${1:-/mnt/avspot-cache}
lsblk=${LSBLK:-lsblk}
findmnt=${FINDMNT:-findmnt}
mountpoint_cmd=${MOUNTPOINT_CMD:-mountpoint}
mkfs=${MKFS:-mkfs.ext4}
mount_cmd=${MOUNT:-mount}
sudo=${SUDO-sudo}   # SUDO="" runs the commands as they are
owner=${OWNER:-1000:100}   # the ray user of the rayproject images (uid 1000, group users)

$sudo mkdir -p "$mnt"
if $mountpoint_cmd -q "$mnt"; then
  echo "node_cache_disk.sh: $mnt is mounted already"
  exit 0
fi
# NVMe instance store volumes report this model; EBS volumes report "Amazon Elastic Block Store".
dev=$($lsblk -dnpo NAME,MODEL | awk '/Amazon EC2 NVMe Instance Storage/ {print $1; exit}')
if [[ -z $dev ]]; then
  $sudo chown "$owner" "$mnt"
  echo "node_cache_disk.sh: no instance store: the node cache stays on the root volume ($mnt)"
  exit 0
fi
# Some AMIs mount the instance store themselves (the DLAMIs at /opt/dlami/nvme): use that mount.
existing=$($findmnt -nro TARGET --source "$dev" | head -n 1 || true)
if [[ -n $existing ]]; then
  $sudo "$mount_cmd" --bind "$existing" "$mnt"
  echo "node_cache_disk.sh: $dev (mounted at $existing) bound to $mnt"
else
  $sudo "$mkfs" -q -F -m 0 -E nodiscard "$dev"
  $sudo "$mount_cmd" -o noatime "$dev" "$mnt"
  echo "node_cache_disk.sh: $dev formatted and mounted at $mnt"
fi
$sudo chown "$owner" "$mnt"
