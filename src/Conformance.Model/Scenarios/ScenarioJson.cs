using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Conformance.Model.Scenarios;

/// <summary>
/// Reads and writes scenarios as JSON. Reading is strict: an unknown field, a missing one, a wrong type,
/// a number that does not fit, or a layout QEMU could not build is reported with its JSON path.
/// Numbers may be JSON numbers or strings ("0xff000000", "4096"); sizes up to 2^64 ("0x10000000000000000").
/// </summary>
public static class ScenarioJson
{
    // ------------------------------------------------------------------ reading

    /// <summary>
    /// Parses a scenario. A layout given by reference (`"layout": "dump.mtree.txt"` or
    /// `{"mtree": …, "flat": …, "maxBounceBufferSize": {"space": bytes}}`) is read by <paramref name="resolve"/>;
    /// without one such a scenario is an error (the model does no I/O).
    /// </summary>
    public static Scenario Parse(string json, Func<LayoutReference, LayoutSpec>? resolve = null)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ScenarioFormatException($"$ (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})", "not valid JSON: " + FirstSentence(e.Message));
        }
        using (doc)
        {
            var scenario = ScenarioReading.Read(doc.RootElement, resolve);
            Validate(scenario);
            return scenario;
        }
    }

    private static string FirstSentence(string s)
    {
        int i = s.IndexOf(". ", StringComparison.Ordinal);
        return i < 0 ? s : s[..(i + 1)];
    }

    /// <summary>Builds the layout once so that any LayoutError surfaces at parse time, and checks op references.</summary>
    private static void Validate(Scenario scenario)
    {
        MemorySystem system;
        try
        {
            system = new MemorySystem(scenario.Layout, scenario.Profile);
        }
        catch (LayoutError e)
        {
            throw new ScenarioFormatException(e.Path, e.Message[(e.Path.Length + 2)..]);
        }
        var spaces = system.AddressSpaces.Select(a => a.Name).ToHashSet();
        ValidateSpaces(scenario.Ops, "$.ops", spaces);
        for (int t = 0; t < scenario.Threads.Count; t++) ValidateSpaces(scenario.Threads[t], $"$.threads[{t}]", spaces);
    }

    private static void ValidateSpaces(IReadOnlyList<ScenarioOp> ops, string path, HashSet<string> spaces)
    {
        for (int i = 0; i < ops.Count; i++)
        {
            string? space = ops[i] switch
            {
                MapOp m => m.Space,
                MapOrWaitOp m => m.Space,
                ReadOp r => r.Space,
                VirtioSetupOp v => v.Space,
                ServeQueueOp q => q.Space,
                WriteOp w => w.Space,
                RegisterClientOp c => c.Space,
                UnregisterClientOp c => c.Space,
                _ => null,
            };
            if (space is not null && !spaces.Contains(space))
                throw new ScenarioFormatException($"{path}[{i}].as", $"no address space '{space}' in the layout");
        }
    }

    // ------------------------------------------------------------------ writing

    /// <summary>Canonical JSON: fields in a fixed order, addresses and sizes in hex, defaults left out.</summary>
    public static string Write(Scenario scenario) => Written(indented: true, w =>
    {
        w.WriteStartObject();
        if (scenario.Description is not null) w.WriteString("description", scenario.Description);
        if (scenario.Property is not null) w.WriteString("property", scenario.Property);
        w.WriteString("profile", scenario.Profile.ToString());
        w.WritePropertyName("layout");
        if (scenario.LayoutFrom is { } from) WriteLayoutReference(w, from);
        else WriteLayout(w, scenario.Layout);
        w.WriteStartArray("ops");
        foreach (var op in scenario.Ops) WriteOp(w, op);
        w.WriteEndArray();
        if (scenario.IsConcurrent)
        {
            w.WriteStartArray("threads");
            foreach (var thread in scenario.Threads)
            {
                w.WriteStartArray();
                foreach (var op in thread) WriteOp(w, op);
                w.WriteEndArray();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }) + "\n";

    /// <summary>One operation's canonical JSON on one line, as it stands in a scenario's "ops".</summary>
    public static string Write(ScenarioOp op) => Written(indented: false, w => WriteOp(w, op));

    private static string Written(bool indented, Action<Utf8JsonWriter> write)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = indented })) write(w);
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static string Hex(UInt128 v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    private static void WriteLayoutReference(Utf8JsonWriter w, LayoutReference r)
    {
        if (r.Flat is null && r.MaxBounceBufferSizes.Count == 0)
        {
            w.WriteStringValue(r.Mtree);
            return;
        }
        w.WriteStartObject();
        w.WriteString("mtree", r.Mtree);
        if (r.Flat is not null) w.WriteString("flat", r.Flat);
        if (r.MaxBounceBufferSizes.Count > 0)
        {
            w.WriteStartObject("maxBounceBufferSize");
            foreach (var (space, bytes) in r.MaxBounceBufferSizes) w.WriteNumber(space, bytes);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static void WriteLayout(Utf8JsonWriter w, LayoutSpec layout)
    {
        w.WriteStartObject();
        w.WriteStartArray("regions");
        foreach (var r in layout.Regions) WriteRegion(w, r);
        w.WriteEndArray();
        w.WriteStartArray("addressSpaces");
        foreach (var a in layout.AddressSpaces)
        {
            w.WriteStartObject();
            w.WriteString("name", a.Name);
            w.WriteString("root", a.Root);
            if (a.RootIndex is int rootIndex) w.WriteNumber("rootIndex", rootIndex);
            if (a.MaxBounceBufferSize != ProfileFacts.DefaultMaxBounceBufferSize) w.WriteNumber("maxBounceBufferSize", a.MaxBounceBufferSize);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (layout.Dirty != DirtyLogging.Default)
        {
            w.WriteStartObject("dirtyLogging");
            w.WriteBoolean("migration", layout.Dirty.Migration);
            w.WriteBoolean("code", layout.Dirty.Code);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static readonly Dictionary<RegionKind, string> KindNames = ScenarioReading.Kinds.ToDictionary(kv => kv.Value, kv => kv.Key);

    private static void WriteRegion(Utf8JsonWriter w, RegionSpec r)
    {
        w.WriteStartObject();
        w.WriteString("name", r.Name);
        w.WriteString("kind", KindNames[r.Kind]);
        if (r.Addr != 0) w.WriteString("addr", Hex(r.Addr));
        w.WriteString("size", Hex(r.Size));
        if (r.Priority != 0) w.WriteNumber("priority", r.Priority);
        if (!r.Enabled) w.WriteBoolean("enabled", false);
        if (r.Readonly) w.WriteBoolean("readonly", true);
        if (!r.RomdMode) w.WriteBoolean("romdMode", false);
        if (r.LogVga) w.WriteBoolean("logVga", true);
        if (r.Nonvolatile) w.WriteBoolean("nonvolatile", true);
        if (r.Terminates) w.WriteBoolean("terminates", true);
        if (r.AliasTarget is not null) w.WriteString("target", r.AliasTarget);
        if (r.AliasTargetOccurrence is { } occurrence) w.WriteNumber("targetIndex", occurrence);
        if (r.AliasOffset != 0) w.WriteString("offset", Hex(r.AliasOffset));
        if (r.Owner is not null) w.WriteString("owner", r.Owner);
        if (r.Seed is { } seed) w.WriteNumber("seed", seed);
        if (r.Access is { } a && a != AccessRules.Default)
        {
            w.WriteStartObject("access");
            if (a.ValidMaxAccessSize != 0) w.WriteNumber("validMax", a.ValidMaxAccessSize);
            if (a.ImplMinAccessSize != 0) w.WriteNumber("implMin", a.ImplMinAccessSize);
            if (a.ImplMaxAccessSize != 0) w.WriteNumber("implMax", a.ImplMaxAccessSize);
            if (a.ImplUnaligned) w.WriteBoolean("unaligned", true);
            w.WriteEndObject();
        }
        if (r.Subregions.Count > 0)
        {
            w.WriteStartArray("subregions");
            foreach (var s in r.Subregions) WriteRegion(w, s);
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    private static void WriteOp(Utf8JsonWriter w, ScenarioOp op)
    {
        w.WriteStartObject();
        switch (op)
        {
            case MapOp m:
                w.WriteString("op", "map"); w.WriteString("id", m.Id); w.WriteString("as", m.Space);
                w.WriteString("addr", Hex(m.Addr)); w.WriteNumber("len", m.Len); w.WriteBoolean("write", m.Write);
                break;
            case WriteMappedOp wm:
                w.WriteString("op", "writeMapped"); w.WriteString("id", wm.Id);
                if (wm.Offset != 0) w.WriteNumber("offset", wm.Offset);
                if (wm.Data is not null) w.WriteString("data", Convert.ToHexString(wm.Data).ToLowerInvariant());
                else w.WriteNumber("fillByte", wm.FillByte ?? 0);
                break;
            case ReadMappedOp rm:
                w.WriteString("op", "readMapped"); w.WriteString("id", rm.Id);
                if (rm.Offset != 0) w.WriteNumber("offset", rm.Offset);
                if (rm.Len is { } len) w.WriteNumber("len", len);
                break;
            case UnmapOp u:
                w.WriteString("op", "unmap"); w.WriteString("id", u.Id);
                if (u.AccessPercent is { } percent) w.WriteNumber("percent", percent);
                else if (u.AccessLen is { } al) w.WriteNumber("accessLen", al);
                else w.WriteString("accessLen", "all");
                break;
            case MapOrWaitOp mw:
                w.WriteString("op", "mapOrWait"); w.WriteString("id", mw.Id); w.WriteString("as", mw.Space);
                w.WriteString("addr", Hex(mw.Addr)); w.WriteNumber("len", mw.Len); w.WriteBoolean("write", mw.Write); w.WriteString("client", mw.Client);
                break;
            case ServeQueueOp q:
                w.WriteString("op", "serveQueue"); w.WriteString("as", q.Space); w.WriteNumber("queueSize", q.QueueSize);
                w.WriteString("desc", Hex(q.Desc)); w.WriteString("avail", Hex(q.Avail)); w.WriteString("used", Hex(q.Used));
                WriteEntries(w, q.Entries);
                WriteHeads(w, q.Heads);
                break;
            case ReadOp r:
                w.WriteString("op", "read"); w.WriteString("as", r.Space); w.WriteString("addr", Hex(r.Addr)); w.WriteNumber("len", r.Len);
                break;
            case WriteOp wr:
                w.WriteString("op", "write"); w.WriteString("as", wr.Space); w.WriteString("addr", Hex(wr.Addr));
                w.WriteString("data", Convert.ToHexString(wr.Data).ToLowerInvariant());
                break;
            case RegisterClientOp c:
                w.WriteString("op", "registerClient"); w.WriteString("as", c.Space); w.WriteString("client", c.Client);
                break;
            case UnregisterClientOp c:
                w.WriteString("op", "unregisterClient"); w.WriteString("as", c.Space); w.WriteString("client", c.Client);
                break;
            case RunBottomHalvesOp:
                w.WriteString("op", "runBottomHalves");
                break;
            case VirtioSetupOp v:
                w.WriteString("op", "virtioSetup"); w.WriteString("as", v.Space); w.WriteNumber("queueSize", v.QueueSize);
                w.WriteString("desc", Hex(v.Desc)); w.WriteString("avail", Hex(v.Avail)); w.WriteString("used", Hex(v.Used));
                if (v.EventIdx) w.WriteBoolean("eventIdx", true);
                if (v.Indirect) w.WriteBoolean("indirect", true);
                if (v.Version1) w.WriteBoolean("version1", true);
                w.WriteNumber("diskSectors", v.DiskSectors);
                if (v.Serial.Length > 0) w.WriteString("serial", v.Serial);
                break;
            case DescriptorsOp d:
                w.WriteString("op", "descriptors");
                if (d.Table is { } t) w.WriteString("table", Hex(t));
                WriteEntries(w, d.Entries);
                break;
            case PublishOp p:
                w.WriteString("op", "publish");
                WriteHeads(w, p.Heads);
                break;
            case AvailIdxOp a:
                w.WriteString("op", "availIdx"); w.WriteNumber("idx", a.Idx);
                break;
            case InterruptSuppressionOp si:
                w.WriteString("op", "suppressInterrupts"); w.WriteNumber("flags", si.Flags); w.WriteNumber("usedEvent", si.UsedEvent);
                break;
            case KickOp:
                w.WriteString("op", "kick");
                break;
            case CompleteIoOp:
                w.WriteString("op", "completeIo");
                break;
            case PopOp po:
                w.WriteString("op", "pop"); w.WriteString("element", po.Element);
                break;
            case ReleaseOp r:
                w.WriteString("op", r.How); w.WriteString("element", r.Element); w.WriteNumber("len", r.Len);
                break;
            case VirtioResetOp:
                w.WriteString("op", "virtioReset");
                break;
        }
        w.WriteEndObject();
    }

    private static void WriteEntries(Utf8JsonWriter w, IReadOnlyList<DescriptorEntry> entries)
    {
        w.WriteStartArray("entries");
        foreach (var e in entries)
        {
            w.WriteStartObject();
            w.WriteNumber("index", e.Index); w.WriteString("addr", Hex(e.Addr)); w.WriteNumber("len", e.Len);
            if (e.Flags != 0) w.WriteNumber("flags", e.Flags);
            if (e.Next != 0) w.WriteNumber("next", e.Next);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    private static void WriteHeads(Utf8JsonWriter w, IReadOnlyList<ushort> heads)
    {
        w.WriteStartArray("heads");
        foreach (var h in heads) w.WriteNumberValue(h);
        w.WriteEndArray();
    }
}
