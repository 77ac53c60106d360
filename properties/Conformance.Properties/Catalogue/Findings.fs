/// The registry of findings: places where the QEMU-faithful model breaks a property as stated, because
/// QEMU itself does. Properties report these as expected, with their evidence; anything unregistered fails.
module Conformance.Properties.Findings

type Finding =
    {
        Id: string
        Title: string
        /// The property whose statement QEMU breaks.
        Property: string
        /// Where in QEMU the behaviour comes from.
        Evidence: string list
        Impact: string
        /// A minimal scenario that shows it (fixtures/findings/<id>.json).
        Scenario: string
        /// The property's rules (as the catalogue words them) that QEMU departs from; [] for all of them.
        Rules: string list
    }

let zeroLengthDirty =
    { Id = "F-DMA-1"
      Title = "A write unmap with access_len 0 dirties the page its mapping starts in, when that start is not page-aligned"
      Property = "dirty-exactness"
      Evidence =
        [ "softmmu/physmem.c:address_space_unmap (7.2) and system/physmem.c:address_space_unmap (master) call invalidate_and_set_dirty(mr, addr1, access_len) for every direct write unmap, whatever access_len is"
          "include/exec/ram_addr.h:cpu_physical_memory_set_dirty_range computes end = TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS and page = start >> TARGET_PAGE_BITS, so length 0 at an unaligned start covers one page"
          "docs/qemu-rules.md, DIRTY-2 (zero length at an unaligned start, code-derived)" ]
      Impact = "Harmless over-approximation: one page migrated again (and, under TCG, its translated code invalidated) although nothing was written."
      Scenario = "fixtures/findings/F-DMA-1.json"
      Rules = [] }

let bounceSpansSections =
    { Id = "F-DMA-2"
      Title = "A bounce mapping is not clamped at the end of its section: it may cover the regions that follow"
      Property = "map-length"
      Evidence =
        [ "softmmu/physmem.c:address_space_translate_internal clamps the length only for RAM (comment: MMIO callers must clamp themselves)"
          "softmmu/physmem.c:address_space_map bounce path caps the length at TARGET_PAGE_SIZE (7.2) or the address space's remaining budget (master), never at the section end"
          "the pre-read (flatview_read) and the write-back (address_space_write) re-translate every piece, so each region still sees its own accesses" ]
      Impact =
        "By design: a device mapping MMIO gets up to a page that may run into the next region or a hole; reads of holes give zeros, writes to them are dropped."
      Scenario = "fixtures/findings/F-DMA-2.json"
      Rules = [] }

let mmioAccessPastRegionEnd =
    { Id = "F-DMA-3"
      Title =
        "An I/O access (to MMIO or a hole) can run past the end of its section: the next region's bytes go to the first one, past its end, and the next region never sees them"
      Property = "write-back-on-unmap"
      Evidence =
        [ "softmmu/physmem.c:flatview_read_continue / flatview_write_continue size each I/O access with memory_access_size (alignment and valid.max_access_size), not with the section length"
          "softmmu/memory.c:memory_region_access_valid checks size and alignment, not the region bounds"
          "the address_space_translate_internal comment: MMIO registers are expected to take full-width accesses based only on their address" ]
      Impact =
        "A region whose size is not a multiple of the access size receives the neighbouring region's bytes at offsets past its end, and the neighbour (even RAM) never gets them: a DMA write that starts in a hole just below RAM can lose the first RAM bytes."
      Scenario = "fixtures/findings/F-DMA-3.json"
      Rules = [] }

let accessWidened =
    { Id = "F-DMA-4"
      Title = "An access narrower than a device's impl.min_access_size is widened: a write carries zero bytes the transfer did not contain"
      Property = "write-back-on-unmap"
      Evidence =
        [ "softmmu/memory.c:access_with_adjusted_size: access_size = MAX(MIN(size, access_size_max), access_size_min), no read-modify-write"
          "softmmu/memory.c:memory_region_write_accessor masks the value with the widened access size, so the extra bytes are zeros" ]
      Impact = "A 1-byte DMA write-back to a device with impl.min_access_size 2 or 4 also writes zeros to the neighbouring bytes of that register."
      Scenario = "fixtures/findings/F-DMA-4.json"
      Rules = [] }

let romdMapPastSection =
    { Id = "F-DMA-5"
      Title =
        "A direct read mapping of a ROM device in romd mode is clamped at the end of its RAMBlock, not of its section: it can cover bytes the guest sees as another region"
      Property = "map-length"
      Evidence =
        [ "softmmu/physmem.c:address_space_translate_internal clamps the length only when memory_region_is_ram(mr); a ROM device is not ram"
          "softmmu/physmem.c:flatview_extend_translation returns the whole request at once when the first piece already covers it"
          "softmmu/physmem.c:qemu_ram_ptr_length clamps to block->max_length only"
          "docs/qemu-rules.md, M12 (code-derived)" ]
      Impact =
        "Where a higher-priority region overlays part of a romd device, a device reading through the mapping sees the ROM image instead of the overlaying region."
      Scenario = "fixtures/findings/F-DMA-5.json"
      Rules = [] }

let loopReadsOneMore =
    { Id = "F-VQ-1"
      Title = "A looping chain is detected only after queue-size + 1 descriptors were read and mapped"
      Property = "malformed-rings"
      Evidence =
        [ "hw/virtio/virtio.c:virtqueue_split_pop maps each descriptor first and checks ++elem_entries > max afterwards, so the (max+1)-th descriptor is read and mapped before \"Looped descriptor\""
          "VIRTIO 1.2 §2.7.5.3.1: a driver MUST NOT create a chain longer than the queue size; the device side bound is QEMU's choice" ]
      Impact = "One extra descriptor is read and mapped (and then unmapped) per looping chain; bounded, harmless."
      Scenario = "fixtures/findings/F-VQ-1.json"
      Rules = [] }

let blkUsedLenOverReport =
    { Id = "F-BLK-1"
      Title = "virtio-blk reports the whole in length as used length, also when it wrote only the status byte (errors, unsupported requests) or a short GET_ID"
      Property = "used-length-honesty"
      Evidence =
        [ "hw/block/virtio-blk.c:virtio_blk_handle_request sets req->in_len = iov_size(in_iov, in_num) before parsing (comment: we always touch the last byte)"
          "hw/block/virtio-blk.c:virtio_blk_req_complete pushes with req->in_len regardless of status"
          "VIRTIO 1.2 §2.7.8.2: the device MUST NOT report more bytes than it wrote (under-reporting is allowed)" ]
      Impact =
        "On an I/O error the driver is told the whole read buffer was written although only the status byte was; guests rely on the status, so in practice it is harmless, but it breaks the spec's used-length rule."
      Scenario = "fixtures/findings/F-BLK-1.json"
      Rules = [] }

let blkUninitialisedWriteBack =
    { Id = "F-BLK-2"
      Title = "A virtio-blk read that fails (IOERR, UNSUPP) into a non-RAM buffer writes uninitialised heap bytes to the device (QEMU 7.2)"
      Property = "no-invented-bytes"
      Evidence =
        [ "seen against QEMU 7.2.22 by DifferentialTests: a read of 4624 bytes (not a sector multiple, so IOERR) with a 16-byte buffer in pc-testdev MMIO left 0000000000000000c00c000000000000 there, bytes nobody produced"
          "hw/block/virtio-blk.c:virtio_blk_req_complete pushes with in_len although no data was read; virtqueue_unmap_sg then unmaps each in-buffer with its full length"
          "softmmu/physmem.c:address_space_map allocates the 7.2 bounce buffer with qemu_memalign and never initialises it for writes; address_space_unmap writes access_len bytes of it back"
          "QEMU 9.2's g_malloc0 turns the garbage into zeros (still bytes the device never produced)" ]
      Impact =
        "Host heap contents reach a guest-visible device register or memory: an information leak from QEMU to the guest, on a guest-triggerable path (needs a DMA buffer in MMIO or ROM-device space)."
      Scenario = "fixtures/findings/F-BLK-2.json"
      Rules = [] }

let zoneReportBreaksDevice =
    { Id = "F-BLK-3"
      Title =
        "A zone report whose in buffer is shorter than 129 bytes breaks the device (virtio_error), also where zones are not offered, instead of completing with UNSUPP (QEMU 8.0 and later)"
      Property = "blk-requests"
      Evidence =
        [ "seen on QEMU 10.0.13 and 11.1.3 by P18 blk-requests judging QEMU itself (conformance check --target qemu --property blk-requests): a type-16 request with a 1-byte in buffer printed \"in buffer too small for zone report\", broke the device and left status 3 (ZONE_INVALID_CMD) unpublished (from 9.0; 8.0 and 8.1 write no status at all); QEMU 7.2.22 answers UNSUPP"
          "hw/block/virtio-blk.c:virtio_blk_handle_zone_report checks req->in_len against inhdr + zone report + one descriptor before check_zoned_request, the function that answers UNSUPP without VIRTIO_BLK_F_ZONED"
          "VIRTIO 1.2 §5.2.6: a request type the device does not support completes with VIRTIO_BLK_S_UNSUPP; zone requests are only defined once VIRTIO_BLK_F_ZONED is negotiated"
          "docs/qemu-rules.md, VBLK-4" ]
      Impact =
        "A guest (or a buggy driver) can put the device into the broken state with one malformed request of a type it never negotiated; a reset is needed. No memory-safety impact: the buffer length is checked, just too early."
      Scenario = "fixtures/findings/F-BLK-3.json"
      Rules = [ "VIRTIO 1.2 §5.2.6"; "hw/block/virtio-blk.c:virtio_blk_handle_request" ] }

let budgetReturnedBeforeFree =
    { Id = "F-DMA-6"
      Title = "From QEMU 9.2 the bounce memory that exists can exceed an address space's budget: unmap returns a buffer's budget before it frees the buffer"
      Property = "bounce-budget"
      Evidence =
        [ "system/physmem.c:address_space_unmap (9.2 to 11.x): qatomic_sub(&as->bounce_buffer_size, bounce->len), then memory_region_unref and g_free"
          "system/physmem.c:address_space_map: another thread's map can reserve the returned bytes (qatomic_cmpxchg) and g_malloc0 its buffer before the first one is freed"
          "docs/qemu-rules.md, UM-2" ]
      Impact =
        "Transient: the budget bounds reserved bytes, not allocated ones; for a moment up to one more buffer's worth of memory exists. 7.2 frees first (U72-2)."
      // a concurrency finding: shown by a controlled interleaving, not by a scenario file (ConcurrencyPropertyTests)
      Scenario = ""
      Rules = [] }

let all =
    [ zeroLengthDirty
      bounceSpansSections
      mmioAccessPastRegionEnd
      accessWidened
      romdMapPastSection
      loopReadsOneMore
      blkUsedLenOverReport
      blkUninitialisedWriteBack
      zoneReportBreaksDevice
      budgetReturnedBeforeFree ]

let byId id = all |> List.find (fun f -> f.Id = id)
