//go:build !(linux || darwin || freebsd)

package eventstore

// volumeSpace cannot measure a volume on this system: the storage defaults stay fixed and
// appends are not refused ahead of a full disk.
func volumeSpace(string) (total, free uint64, ok bool) { return 0, 0, false }
