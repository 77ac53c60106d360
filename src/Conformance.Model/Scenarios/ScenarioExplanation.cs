using System.Text;

namespace Conformance.Model.Scenarios;

/// <summary>
/// `conformance explain`: what the model does for a scenario, step by step, in the words of the QEMU
/// rules — which section an address hits and why, direct or bounce, references, bytes read into or
/// written back from bounce buffers, pages dirtied, map clients woken — and, at the end, what a
/// mapping that was never unmapped leaves behind.
/// </summary>
public static class ScenarioExplanation
{
    public static string Render(ScenarioRun run)
    {
        var sb = new StringBuilder();
        var sys = run.System;
        var profile = run.Scenario.Profile;
        void Line(string s) => sb.Append(s).Append('\n');
        Line($"Profile {profile}: " + (profile == Profile.Qemu72
            ? "QEMU up to 9.0 — one bounce buffer for the whole process, at most one page (softmmu/physmem.c: static BounceBuffer bounce)."
            : "QEMU 9.2 and later — bounce bytes accounted per address space against max_bounce_buffer_size (system/physmem.c)."));
        if (run.Scenario.Description is { } d) Line(d);
        Line("");

        ulong UsedBefore(StepRecord s, string space) =>
            s.Index == 0 ? 0 : run.Steps[s.Index - 1].BounceBytesInUse.GetValueOrDefault(space);

        foreach (var step in run.Steps)
        {
            Line($"{step.Index + 1}. {ScenarioTrace.Describe(step.Op)}");
            void Say(string s) => Line("   " + s);
            if (step.Skipped is not null)
            {
                Say($"skipped: {step.Skipped}.");
                Line("");
                continue;
            }
            switch (step.Op)
            {
                case MapOp m:
                    ExplainMap(step, m, Say, sys, profile, UsedBefore(step, m.Space));
                    break;
                case WriteMappedOp w:
                    var wm = run.Mappings[w.Id];
                    Say(wm.Kind == MappingKind.Direct
                        ? "The caller writes straight into guest RAM through the host pointer. Nothing is marked dirty yet: that happens at unmap, for access_len bytes."
                        : "The caller writes into the bounce buffer only. The device sees nothing yet: the buffer is written back at unmap (address_space_unmap), and only access_len bytes of it.");
                    break;
                case ReadMappedOp:
                    Say("The caller reads through the host pointer (for a bounce mapping: what was read from the device at map time).");
                    break;
                case UnmapOp u:
                    ExplainUnmap(step, u, Say, run, profile);
                    break;
                case ReadOp r:
                    Say(RegionPath.Explain(sys.Space(r.Space), r.Addr));
                    Say("address_space_read → flatview_read_continue: RAM is copied, I/O goes through the device's callbacks in access sizes from memory_access_size.");
                    break;
                case WriteOp w2:
                    Say(RegionPath.Explain(sys.Space(w2.Space), w2.Addr));
                    Say("address_space_write → flatview_write_continue: RAM is copied and marked dirty (invalidate_and_set_dirty) chunk by chunk; I/O goes to the callbacks; ROM and holes drop the bytes.");
                    break;
                case RegisterClientOp c:
                    Say(step.Scheduled.Count > 0
                        ? $"cpu_register_map_client: bounce space is free right now, so every waiting client is scheduled at once: {string.Join(", ", step.Scheduled)} (callbacks run later, from the main loop)."
                        : $"cpu_register_map_client: {c.Client} waits until a bounce buffer is released.");
                    break;
                case UnregisterClientOp c:
                    Say($"cpu_unregister_map_client: {c.Client}'s record is removed if it has not fired yet; a bottom half already scheduled still runs.");
                    break;
                case VirtioSetupOp:
                    Say("virtio_queue_set_addresses → virtio_init_region_cache: each ring gets a MemoryRegionCache (holding a reference on its region); a ring not covered by one cache is a virtio_error (\"Cannot map desc/used/avail\").");
                    break;
                case DescriptorsOp or PublishOp or AvailIdxOp or InterruptSuppressionOp:
                    Say("The driver writes guest memory, as a CPU would (address_space_write): descriptors, then available-ring entries, then the index that publishes them.");
                    break;
                case KickOp:
                    Say("virtio_blk_handle_vq: pop every available request (virtqueue_pop maps every descriptor: device-readable ones for reading, device-writable ones for writing); GET_ID, unsupported and out-of-range requests complete at once, reads, writes and flushes go to the block layer with their buffers still mapped.");
                    break;
                case CompleteIoOp:
                    Say("The block layer finishes: each request's data goes through its mappings, the status byte into the last in-buffer, then virtqueue_push unmaps with the in length (bounce buffers are written back now) and publishes the used element.");
                    break;
                case PopOp:
                    Say("virtqueue_pop (hw/virtio/virtio.c:virtqueue_split_pop): head from the available ring, walk the chain, map every descriptor; any error unmaps what was mapped and breaks the device.");
                    break;
                case ReleaseOp r:
                    Say(r.How switch
                    {
                        "push" => $"virtqueue_push: virtqueue_unmap_sg counts the first {r.Len} bytes of the in-buffers as written (dirty pages, bounce write-back), then the used element and index are published.",
                        "detach" => "virtqueue_detach_element: unmapped without a used entry; inuse drops.",
                        _ => "virtqueue_unpop: last_avail_idx steps back and the element is detached; the next pop maps the same chain again.",
                    });
                    break;
                case VirtioResetOp:
                    Say("virtio_reset: queue state back to zero and caches dropped — outstanding elements are not unmapped (the device must have released them).");
                    break;
                case RunBottomHalvesOp:
                    Say(step.Ran.Count > 0
                        ? $"The main loop runs the scheduled bottom halves: {string.Join(", ", step.Ran)} — each map client retries its map now."
                        : "The main loop runs: no bottom half was scheduled.");
                    break;
            }
            if (step.Virtio is { } vs)
            {
                if (vs.Error is not null) Say($"virtio_error: \"{vs.Error}\" — the device is broken until reset{((run.Virtio?.Device.Has(Virtio.VirtioConstants.FeatureVersion1) ?? false) ? " (NEEDS_RESET is set for the VERSION_1 driver)" : "")}.");
                foreach (var (id, len) in vs.NewUsed) Say($"the driver sees used element {{id {id}, len {len}}}.");
            }
            foreach (var a in ScenarioTrace.DeviceAccessRuns(step.DeviceAccesses)) Say($"device callback: {a}");
            foreach (var g in step.NewlyDirty.GroupBy(x => x.Client))
                Say($"dirty ({g.Key.ToString().ToLowerInvariant()}): {string.Join("; ", g.GroupBy(x => x.Block).Select(b => $"{b.Key} pages {ScenarioTrace.Pages(b.Select(x => x.Page))}"))}");
            foreach (var (owner, before, count) in ScenarioTrace.RefChanges(run.Steps, step))
                Say($"{(count > before ? "memory_region_ref" : "memory_region_unref")}: owner {owner} now holds {count} reference{(count == 1 ? "" : "s")}.");
            Line("");
        }

        Line("What is left at the end:");
        var live = run.Mappings.Where(kv => kv.Value.Live).OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        if (live.Count == 0) Line("   every mapping was unmapped: references are back at baseline and bounce space is free.");
        foreach (var (id, m) in live)
        {
            var owner = m.Region.Owner?.Name;
            var lines = new List<string>();
            if (owner is not null) lines.Add($"owner {owner} keeps the reference this mapping took, so it cannot be finalised (on hot-unplug its memory would never be freed)");
            if (m.Kind == MappingKind.Direct && m.IsWrite)
                lines.Add("whatever the caller wrote is in guest RAM, but those pages were never marked dirty: live migration would not send them again, and TCG would keep stale translated code");
            if (m.Kind == MappingKind.Bounce)
            {
                if (m.IsWrite)
                {
                    int written = m.Bounce!.Produced.Count(o => o == ByteOrigin.Caller);
                    lines.Add($"the {written} byte{(written == 1 ? "" : "s")} the caller wrote never reached {m.Region.Name}: a bounce buffer is written back only at unmap");
                }
                lines.Add(profile == Profile.Qemu72
                    ? "the bounce buffer stays taken: every later bounce map in the whole machine fails, and map clients are never woken"
                    : $"{m.Length} bytes of {m.AddressSpace.Name}'s bounce budget stay taken (and destroying the address space would abort)");
            }
            Line($"   {id} ({(m.IsWrite ? "write" : "read")}, {m.Kind.ToString().ToLowerInvariant()}, {m.Length} bytes at 0x{m.Addr:x}) was never unmapped:");
            foreach (var l in lines) Line("     - " + l);
        }
        foreach (var space in sys.AddressSpaces)
        {
            var waiting = sys.RegisteredMapClients(space);
            if (waiting.Count > 0 && (profile == Profile.Qemu92 || space == sys.AddressSpaces[0]))
                Line($"   map clients still waiting{(profile == Profile.Qemu92 ? " on " + space.Name : "")}: {string.Join(", ", waiting)}");
        }
        if (sys.PendingBottomHalves.Count > 0) Line($"   bottom halves scheduled but not yet run: {string.Join(", ", sys.PendingBottomHalves)}");
        return sb.ToString();
    }

    private static void ExplainMap(StepRecord step, MapOp m, Action<string> say, MemorySystem sys, Profile profile, ulong usedBefore)
    {
        var space = sys.Space(m.Space);
        if (m.Len == 0)
        {
            say("address_space_map with *plen == 0 returns NULL at once and touches nothing (a NULL here does not mean \"no resources\").");
            return;
        }
        say(RegionPath.Explain(space, m.Addr));
        var section = space.View.Translate(m.Addr);
        var mr = section.Region;
        bool direct = mr.IsDirect(m.Write);
        say($"memory_access_is_direct({mr.TypeName}, {(m.Write ? "write" : "read")}) = {direct.ToString().ToLowerInvariant()}" + (direct
            ? ": the device gets a host pointer straight into guest memory."
            : mr.Kind == RegionKind.Rom || (mr.Kind == RegionKind.Ram && mr.Readonly) ? ": ROM is never written directly, so a bounce buffer stands in." : ": not RAM, so a bounce buffer stands in."));
        var r = step.Map!.Value;
        if (r.Mapping is null)
        {
            say(profile == Profile.Qemu72
                ? "The one bounce buffer is in use (bounce.in_use was already set): NULL, *plen = 0. The caller must fail or register a map client and retry."
                : $"{m.Space}'s bounce budget is used up ({usedBefore} of {space.MaxBounceBufferSize} bytes): NULL, *plen = 0.");
            return;
        }
        var mapping = r.Mapping;
        if (mapping.Kind == MappingKind.Direct)
        {
            string why = r.Length == m.Len ? "the whole request"
                : "clamped where the region stops being host-contiguous or its RAMBlock ends (flatview_extend_translation, qemu_ram_ptr_length); the caller maps the rest separately";
            say($"Direct mapping of {r.Length} bytes into {mapping.Region}'s RAMBlock at +0x{mapping.Xlat:x}: {why}.");
        }
        else
        {
            say(profile == Profile.Qemu72
                ? $"The bounce buffer was free: bounce.in_use is now set; length min({m.Len}, TARGET_PAGE_SIZE 4096{(mr.IsRam ? ", section end" : "")}) = {r.Length}."
                : $"{m.Space} had {usedBefore} of {space.MaxBounceBufferSize} bounce bytes in use: this mapping gets {r.Length} of the {m.Len} requested.");
            say(m.Write
                ? (profile == Profile.Qemu72
                    ? "Nothing is read for a write mapping: the buffer holds uninitialised heap bytes until the caller writes (any it does not write but access_len covers will reach the device)."
                    : "Nothing is read for a write mapping: the buffer is zero-filled (g_malloc0); unwritten bytes covered by access_len reach the device as zeros.")
                : "flatview_read fills the buffer from the device now, at map time:");
        }
    }

    private static void ExplainUnmap(StepRecord step, UnmapOp u, Action<string> say, ScenarioRun run, Profile profile)
    {
        var m = run.Mappings[u.Id];
        var result = step.Unmap!.Value;
        ulong accessLen = u.AccessLen ?? m.Length;
        if (m.Kind == MappingKind.Direct)
        {
            say(m.IsWrite
                ? $"address_space_unmap, direct write: invalidate_and_set_dirty marks the pages of exactly access_len = {accessLen} bytes from the mapping start, for every active dirty client."
                : "address_space_unmap, direct read: nothing to mark dirty.");
            return;
        }
        if (m.IsWrite)
        {
            string marks = result.NeverProducedBytesWrittenBack > 0 ? $" ({result.NeverProducedBytesWrittenBack} of them were never written by the caller: uninitialised bytes reach the device)"
                : result.ZeroFillBytesWrittenBack > 0 ? $" ({result.ZeroFillBytesWrittenBack} of them were never written by the caller: zeros reach the device)" : "";
            say($"address_space_unmap, bounce write: address_space_write re-translates 0x{m.Addr:x} now and writes back access_len = {result.BytesWrittenBack} bytes{marks}:");
        }
        else say("address_space_unmap, bounce read: nothing is written back.");
        say(profile == Profile.Qemu72
            ? "The buffer is freed and bounce.in_use cleared; cpu_notify_map_clients schedules every waiting client" + (step.Scheduled.Count > 0 ? $": {string.Join(", ", step.Scheduled)}." : " (none waiting).")
            : $"{m.Length} bytes go back to {m.AddressSpace.Name}'s budget; its waiting clients are scheduled" + (step.Scheduled.Count > 0 ? $": {string.Join(", ", step.Scheduled)}." : " (none waiting)."));
    }
}
