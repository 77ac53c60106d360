/// The registry of findings: places where the QEMU-faithful model breaks a property as stated, because
/// QEMU itself does. Properties report these as expected, with their evidence; anything unregistered fails.
module Conformance.Properties.Findings

type Finding =
    { Id: string
      Title: string
      /// The property whose statement QEMU breaks.
      Property: string
      /// Where in QEMU the behaviour comes from.
      Evidence: string list
      Impact: string
      /// A minimal scenario that shows it (fixtures/findings/<id>.json).
      Scenario: string }

let zeroLengthDirty =
    { Id = "F-DMA-1"
      Title = "A write unmap with access_len 0 dirties the page its mapping starts in, when that start is not page-aligned"
      Property = "dirty-exactness"
      Evidence =
        [ "softmmu/physmem.c:address_space_unmap (7.2) and system/physmem.c:address_space_unmap (master) call invalidate_and_set_dirty(mr, addr1, access_len) for every direct write unmap, whatever access_len is"
          "include/exec/ram_addr.h:cpu_physical_memory_set_dirty_range computes end = TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS and page = start >> TARGET_PAGE_BITS, so length 0 at an unaligned start covers one page"
          "semantics.md §7 (Page range edge case, code-derived)" ]
      Impact = "Harmless over-approximation: one page migrated again (and, under TCG, its translated code invalidated) although nothing was written."
      Scenario = "fixtures/findings/F-DMA-1.json" }

let bounceSpansSections =
    { Id = "F-DMA-2"
      Title = "A bounce mapping is not clamped at the end of its section: it may cover the regions that follow"
      Property = "map-length"
      Evidence =
        [ "softmmu/physmem.c:address_space_translate_internal clamps the length only for RAM (comment: MMIO callers must clamp themselves)"
          "softmmu/physmem.c:address_space_map bounce path caps the length at TARGET_PAGE_SIZE (7.2) or the address space's remaining budget (master), never at the section end"
          "the pre-read (flatview_read) and the write-back (address_space_write) re-translate every piece, so each region still sees its own accesses" ]
      Impact = "By design: a device mapping MMIO gets up to a page that may run into the next region or a hole; reads of holes give zeros, writes to them are dropped."
      Scenario = "fixtures/findings/F-DMA-2.json" }

let mmioAccessPastRegionEnd =
    { Id = "F-DMA-3"
      Title = "An MMIO access can run past the end of its region, carrying bytes that belong to the next region"
      Property = "write-back-on-unmap"
      Evidence =
        [ "softmmu/physmem.c:flatview_read_continue / flatview_write_continue size each I/O access with memory_access_size (alignment and valid.max_access_size), not with the section length"
          "softmmu/memory.c:memory_region_access_valid checks size and alignment, not the region bounds"
          "the address_space_translate_internal comment: MMIO registers are expected to take full-width accesses based only on their address" ]
      Impact = "A region whose size is not a multiple of the access size receives the neighbouring region's bytes at offsets past its end; the neighbour never sees them."
      Scenario = "fixtures/findings/F-DMA-3.json" }

let all = [ zeroLengthDirty; bounceSpansSections; mmioAccessPastRegionEnd ]

let byId id = all |> List.find (fun f -> f.Id = id)
