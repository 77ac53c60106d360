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
            var root = Object(doc.RootElement, "$", "profile", "layout", "ops", "description", "property");
            var profile = root.TryGetProperty("profile", out var p) ? ParseProfile(p, "$.profile") : Profile.Qemu72;
            var layoutElement = Required(root, "layout", "$");
            var reference = ParseLayoutReference(layoutElement, "$.layout");
            LayoutSpec layout;
            if (reference is null) layout = ParseLayout(layoutElement, "$.layout");
            else if (resolve is null)
                throw new ScenarioFormatException("$.layout", $"the layout is the file '{reference.Mtree}', and nothing here reads files");
            else
            {
                try
                {
                    layout = resolve(reference);
                }
                catch (LayoutError e)
                {
                    throw new ScenarioFormatException("$.layout", $"{reference.Mtree}: {e.Message}");
                }
            }
            var ops = Required(root, "ops", "$");
            if (ops.ValueKind != JsonValueKind.Array) throw new ScenarioFormatException("$.ops", "expected an array of operations");
            var list = new List<ScenarioOp>();
            var ids = new HashSet<string>();
            int i = 0;
            foreach (var op in ops.EnumerateArray())
            {
                var parsed = ParseOp(op, $"$.ops[{i}]");
                if (parsed is MapOp m && !ids.Add(m.Id)) throw new ScenarioFormatException($"$.ops[{i}].id", $"mapping id '{m.Id}' is used by an earlier map");
                list.Add(parsed);
                i++;
            }
            var scenario = new Scenario(profile, layout, list)
            {
                LayoutFrom = reference,
                Property = root.TryGetProperty("property", out var prop) ? String(prop, "$.property") : null,
                Description = root.TryGetProperty("description", out var desc) ? String(desc, "$.description") : null,
            };
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
        for (int i = 0; i < scenario.Ops.Count; i++)
        {
            string? space = scenario.Ops[i] switch
            {
                MapOp m => m.Space,
                ReadOp r => r.Space,
                VirtioSetupOp v => v.Space,
                WriteOp w => w.Space,
                RegisterClientOp c => c.Space,
                UnregisterClientOp c => c.Space,
                _ => null,
            };
            if (space is not null && !spaces.Contains(space))
                throw new ScenarioFormatException($"$.ops[{i}].as", $"no address space '{space}' in the layout");
        }
    }

    public static Profile ParseProfile(JsonElement e, string path)
    {
        var s = String(e, path);
        return s switch
        {
            "Qemu72" or "qemu72" => Profile.Qemu72,
            "Qemu92" or "qemu92" => Profile.Qemu92,
            _ => throw new ScenarioFormatException(path, $"unknown profile '{s}' (expected Qemu72 or Qemu92)"),
        };
    }

    /// <summary>A layout by reference, or null for an inline layout.</summary>
    private static LayoutReference? ParseLayoutReference(JsonElement e, string path)
    {
        if (e.ValueKind == JsonValueKind.String) return new LayoutReference(String(e, path), null, new Dictionary<string, ulong>());
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("mtree", out _)) return null;
        var o = Object(e, path, "mtree", "flat", "maxBounceBufferSize");
        var budgets = new Dictionary<string, ulong>();
        if (o.TryGetProperty("maxBounceBufferSize", out var b))
        {
            if (b.ValueKind != JsonValueKind.Object)
                throw new ScenarioFormatException(path + ".maxBounceBufferSize", $"expected an object of address space -> bytes, found {Describe(b)}");
            foreach (var kv in b.EnumerateObject()) budgets[kv.Name] = U64(kv.Value, $"{path}.maxBounceBufferSize.{kv.Name}");
        }
        return new LayoutReference(String(o.GetProperty("mtree"), path + ".mtree"),
            o.TryGetProperty("flat", out var f) ? String(f, path + ".flat") : null, budgets);
    }

    public static LayoutSpec ParseLayout(JsonElement e, string path)
    {
        var o = Object(e, path, "regions", "addressSpaces", "dirtyLogging");
        var regions = Array(Required(o, "regions", path), path + ".regions").Select((r, i) => ParseRegion(r, $"{path}.regions[{i}]")).ToList();
        var spaces = Array(Required(o, "addressSpaces", path), path + ".addressSpaces").Select((a, i) =>
        {
            string p = $"{path}.addressSpaces[{i}]";
            var ao = Object(a, p, "name", "root", "rootIndex", "maxBounceBufferSize");
            ulong budget = ao.TryGetProperty("maxBounceBufferSize", out var b) ? U64(b, p + ".maxBounceBufferSize") : ProfileFacts.DefaultMaxBounceBufferSize;
            if (budget > 1 << 26) throw new ScenarioFormatException(p + ".maxBounceBufferSize", "budgets above 64 MiB are not modelled");
            // rootIndex picks one of several top-level regions of the same name (imported dumps: every PCI
            // device has a "bus master container"); it must name a region called `root`
            int? rootIndex = null;
            string root = String(Required(ao, "root", p), p + ".root");
            if (ao.TryGetProperty("rootIndex", out var ri))
            {
                ulong index = U64(ri, p + ".rootIndex");
                if (index >= (ulong)regions.Count) throw new ScenarioFormatException(p + ".rootIndex", $"there are {regions.Count} top-level regions");
                if (regions[(int)index].Name != root)
                    throw new ScenarioFormatException(p + ".rootIndex", $"region {index} is '{regions[(int)index].Name}', not '{root}'");
                rootIndex = (int)index;
            }
            return new AddressSpaceSpec(String(Required(ao, "name", p), p + ".name"), root, budget, rootIndex);
        }).ToList();
        var dirty = DirtyLogging.Default;
        if (o.TryGetProperty("dirtyLogging", out var d))
        {
            var dobj = Object(d, path + ".dirtyLogging", "migration", "code");
            dirty = new DirtyLogging(
                !dobj.TryGetProperty("migration", out var mig) || Bool(mig, path + ".dirtyLogging.migration"),
                !dobj.TryGetProperty("code", out var code) || Bool(code, path + ".dirtyLogging.code"));
        }
        if (spaces.Count == 0) throw new ScenarioFormatException(path + ".addressSpaces", "a layout needs at least one address space");
        return new LayoutSpec(regions, spaces, dirty);
    }

    private static readonly Dictionary<string, RegionKind> Kinds = new()
    {
        ["container"] = RegionKind.Container,
        ["io"] = RegionKind.Io,
        ["ram"] = RegionKind.Ram,
        ["rom"] = RegionKind.Rom,
        ["romDevice"] = RegionKind.RomDevice,
        ["ramDevice"] = RegionKind.RamDevice,
        ["alias"] = RegionKind.Alias,
    };

    private static RegionSpec ParseRegion(JsonElement e, string path)
    {
        var o = Object(e, path, "name", "kind", "size", "addr", "priority", "enabled", "readonly", "romdMode", "logVga", "nonvolatile",
            "terminates", "target", "targetIndex", "offset", "owner", "seed", "access", "subregions");
        string name = String(Required(o, "name", path), path + ".name");
        if (name.Length == 0) throw new ScenarioFormatException(path + ".name", "a region needs a name");
        string kindText = String(Required(o, "kind", path), path + ".kind");
        if (!Kinds.TryGetValue(kindText, out var kind))
            throw new ScenarioFormatException(path + ".kind", $"unknown kind '{kindText}' (expected {string.Join(", ", Kinds.Keys)})");
        var size = U128(Required(o, "size", path), path + ".size");
        if (size == 0) throw new ScenarioFormatException(path + ".size", "a region cannot be empty");
        if (size > (UInt128)1 << 64) throw new ScenarioFormatException(path + ".size", "a region cannot exceed 2^64 bytes");
        ulong addr = o.TryGetProperty("addr", out var a) ? U64(a, path + ".addr") : 0;
        if ((UInt128)addr + size > (UInt128)1 << 64)
            throw new ScenarioFormatException(path + ".addr", "the region would extend past 2^64");
        AccessRules? access = null;
        if (o.TryGetProperty("access", out var ac))
        {
            string ap = path + ".access";
            var ao = Object(ac, ap, "validMax", "implMin", "implMax", "unaligned");
            uint Size(string field) => ao.TryGetProperty(field, out var v) ? AccessSize(v, $"{ap}.{field}") : 0;
            access = new AccessRules(Size("validMax"), Size("implMin"), Size("implMax"), ao.TryGetProperty("unaligned", out var un) && Bool(un, ap + ".unaligned"));
        }
        var subs = o.TryGetProperty("subregions", out var s) ? Array(s, path + ".subregions").Select((c, i) => ParseRegion(c, $"{path}.subregions[{i}]")).ToList() : new List<RegionSpec>();
        foreach (var (c, i) in subs.Select((c, i) => (c, i)))
            if ((UInt128)c.Addr + c.Size > size && kind != RegionKind.Container && kind != RegionKind.Io)
                throw new ScenarioFormatException($"{path}.subregions[{i}]", "subregion outside its parent");
        return new RegionSpec
        {
            Name = name,
            Kind = kind,
            Size = size,
            Addr = addr,
            Priority = o.TryGetProperty("priority", out var pr) ? I32(pr, path + ".priority") : 0,
            Enabled = !o.TryGetProperty("enabled", out var en) || Bool(en, path + ".enabled"),
            Readonly = o.TryGetProperty("readonly", out var ro) && Bool(ro, path + ".readonly"),
            RomdMode = !o.TryGetProperty("romdMode", out var rm) || Bool(rm, path + ".romdMode"),
            LogVga = o.TryGetProperty("logVga", out var lv) && Bool(lv, path + ".logVga"),
            Nonvolatile = o.TryGetProperty("nonvolatile", out var nv) && Bool(nv, path + ".nonvolatile"),
            Terminates = o.TryGetProperty("terminates", out var te) && Bool(te, path + ".terminates"),
            AliasTarget = o.TryGetProperty("target", out var t) ? String(t, path + ".target") : null,
            AliasTargetOccurrence = o.TryGetProperty("targetIndex", out var ti) ? (int)U64(ti, path + ".targetIndex", int.MaxValue) : null,
            AliasOffset = o.TryGetProperty("offset", out var off) ? U64(off, path + ".offset") : 0,
            Owner = o.TryGetProperty("owner", out var ow) ? String(ow, path + ".owner") : null,
            Seed = o.TryGetProperty("seed", out var sd) ? (uint)U64(sd, path + ".seed", uint.MaxValue) : null,
            Access = access,
            Subregions = subs,
        };
    }

    private static uint AccessSize(JsonElement e, string path)
    {
        ulong v = U64(e, path, 8);
        if (v is not (0 or 1 or 2 or 4 or 8)) throw new ScenarioFormatException(path, "an access size is 1, 2, 4 or 8");
        return (uint)v;
    }

    private static ScenarioOp ParseOp(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new ScenarioFormatException(path, "expected an operation object");
        if (!e.TryGetProperty("op", out var opElement)) throw new ScenarioFormatException(path, "missing field 'op'");
        string op = String(opElement, path + ".op");
        JsonElement o;
        switch (op)
        {
            case "map":
                o = Object(e, path, "op", "id", "as", "addr", "len", "write");
                return new MapOp(Id(o, path), String(Required(o, "as", path), path + ".as"), U64(Required(o, "addr", path), path + ".addr"),
                    U64(Required(o, "len", path), path + ".len"), Bool(Required(o, "write", path), path + ".write"));
            case "writeMapped":
                o = Object(e, path, "op", "id", "offset", "data", "fillByte");
                bool hasData = o.TryGetProperty("data", out var data), hasFill = o.TryGetProperty("fillByte", out var fill);
                if (hasData == hasFill) throw new ScenarioFormatException(path, "give exactly one of 'data' (hex bytes) and 'fillByte'");
                return new WriteMappedOp(Id(o, path), OptU64(o, "offset", path) ?? 0, hasData ? HexBytes(data, path + ".data") : null,
                    hasFill ? (byte)U64(fill, path + ".fillByte", 255) : null);
            case "readMapped":
                o = Object(e, path, "op", "id", "offset", "len");
                return new ReadMappedOp(Id(o, path), OptU64(o, "offset", path) ?? 0, OptU64(o, "len", path));
            case "unmap":
                o = Object(e, path, "op", "id", "accessLen");
                ulong? accessLen = null;
                if (o.TryGetProperty("accessLen", out var al) && !(al.ValueKind == JsonValueKind.String && al.GetString() == "all"))
                    accessLen = U64(al, path + ".accessLen");
                return new UnmapOp(Id(o, path), accessLen);
            case "read":
                o = Object(e, path, "op", "as", "addr", "len");
                return new ReadOp(String(Required(o, "as", path), path + ".as"), U64(Required(o, "addr", path), path + ".addr"), U64(Required(o, "len", path), path + ".len", 1 << 20));
            case "write":
                o = Object(e, path, "op", "as", "addr", "data");
                return new WriteOp(String(Required(o, "as", path), path + ".as"), U64(Required(o, "addr", path), path + ".addr"), HexBytes(Required(o, "data", path), path + ".data"));
            case "registerClient":
                o = Object(e, path, "op", "as", "client");
                return new RegisterClientOp(String(Required(o, "as", path), path + ".as"), String(Required(o, "client", path), path + ".client"));
            case "unregisterClient":
                o = Object(e, path, "op", "as", "client");
                return new UnregisterClientOp(String(Required(o, "as", path), path + ".as"), String(Required(o, "client", path), path + ".client"));
            case "runBottomHalves":
                Object(e, path, "op");
                return new RunBottomHalvesOp();
            case "virtioSetup":
                {
                    o = Object(e, path, "op", "as", "queueSize", "desc", "avail", "used", "eventIdx", "indirect", "version1", "diskSectors", "serial");
                    int qs = (int)U64(Required(o, "queueSize", path), path + ".queueSize", 1024);
                    if (qs == 0 || (qs & (qs - 1)) != 0) throw new ScenarioFormatException(path + ".queueSize", "a split queue size is a power of two from 1 to 1024");
                    bool Flag(string f) => o.TryGetProperty(f, out var fv) && Bool(fv, $"{path}.{f}");
                    return new VirtioSetupOp(String(Required(o, "as", path), path + ".as"), qs,
                        U64(Required(o, "desc", path), path + ".desc"), U64(Required(o, "avail", path), path + ".avail"), U64(Required(o, "used", path), path + ".used"),
                        Flag("eventIdx"), Flag("indirect"), Flag("version1"),
                        (int)(OptU64(o, "diskSectors", path, 1 << 16) ?? 128),
                        o.TryGetProperty("serial", out var se) ? String(se, path + ".serial") : "");
                }
            case "descriptors":
                {
                    o = Object(e, path, "op", "table", "entries");
                    var entries = Array(Required(o, "entries", path), path + ".entries").Select((d, i) =>
                    {
                        string dp = $"{path}.entries[{i}]";
                        var dobj = Object(d, dp, "index", "addr", "len", "flags", "next");
                        return new DescriptorEntry((int)U64(Required(dobj, "index", dp), dp + ".index", 65535), U64(Required(dobj, "addr", dp), dp + ".addr"),
                            (uint)U64(Required(dobj, "len", dp), dp + ".len", uint.MaxValue), (ushort)(OptU64(dobj, "flags", dp, ushort.MaxValue) ?? 0),
                            (ushort)(OptU64(dobj, "next", dp, ushort.MaxValue) ?? 0));
                    }).ToList();
                    return new DescriptorsOp(OptU64(o, "table", path), entries);
                }
            case "publish":
                o = Object(e, path, "op", "heads");
                return new PublishOp(Array(Required(o, "heads", path), path + ".heads").Select((h, i) => (ushort)U64(h, $"{path}.heads[{i}]", 65535)).ToList());
            case "availIdx":
                o = Object(e, path, "op", "idx");
                return new AvailIdxOp((ushort)U64(Required(o, "idx", path), path + ".idx", 65535));
            case "suppressInterrupts":
                o = Object(e, path, "op", "flags", "usedEvent");
                return new InterruptSuppressionOp((ushort)(OptU64(o, "flags", path, ushort.MaxValue) ?? 0), (ushort)(OptU64(o, "usedEvent", path, ushort.MaxValue) ?? 0));
            case "kick":
                Object(e, path, "op");
                return new KickOp();
            case "completeIo":
                Object(e, path, "op");
                return new CompleteIoOp();
            case "pop":
                o = Object(e, path, "op", "element");
                return new PopOp(String(Required(o, "element", path), path + ".element"));
            case "push" or "detach" or "unpop":
                o = Object(e, path, "op", "element", "len");
                return new ReleaseOp(String(Required(o, "element", path), path + ".element"), op, (uint)(OptU64(o, "len", path, uint.MaxValue) ?? 0));
            case "virtioReset":
                Object(e, path, "op");
                return new VirtioResetOp();
            default:
                throw new ScenarioFormatException(path + ".op", $"unknown operation '{op}' (expected map, writeMapped, readMapped, unmap, read, write, registerClient, unregisterClient, runBottomHalves, virtioSetup, descriptors, publish, availIdx, suppressInterrupts, kick, completeIo, pop, push, detach, unpop, virtioReset)");
        }
    }

    private static string Id(JsonElement o, string path) => String(Required(o, "id", path), path + ".id");

    private static ulong? OptU64(JsonElement o, string field, string path, ulong max = ulong.MaxValue) =>
        o.TryGetProperty(field, out var v) ? U64(v, $"{path}.{field}", max) : null;

    private static JsonElement Object(JsonElement e, string path, params string[] allowed)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new ScenarioFormatException(path, $"expected an object, found {Describe(e)}");
        foreach (var p in e.EnumerateObject())
            if (System.Array.IndexOf(allowed, p.Name) < 0)
                throw new ScenarioFormatException($"{path}.{p.Name}", $"unknown field (allowed here: {string.Join(", ", allowed)})");
        return e;
    }

    private static JsonElement Required(JsonElement o, string field, string path) =>
        o.TryGetProperty(field, out var v) ? v : throw new ScenarioFormatException(path, $"missing field '{field}'");

    private static IEnumerable<JsonElement> Array(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().ToList() : throw new ScenarioFormatException(path, $"expected an array, found {Describe(e)}");

    private static string String(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.String ? e.GetString()! : throw new ScenarioFormatException(path, $"expected a string, found {Describe(e)}");

    private static bool Bool(JsonElement e, string path) => e.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new ScenarioFormatException(path, $"expected true or false, found {Describe(e)}"),
    };

    private static int I32(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var v) ? v : throw new ScenarioFormatException(path, $"expected a 32-bit integer, found {Describe(e)}");

    private static ulong U64(JsonElement e, string path, ulong max = ulong.MaxValue)
    {
        var v = U128(e, path);
        if (v > max) throw new ScenarioFormatException(path, $"{v} is larger than {max}");
        return (ulong)v;
    }

    private static UInt128 U128(JsonElement e, string path)
    {
        if (e.ValueKind == JsonValueKind.Number)
        {
            if (e.TryGetUInt64(out var n)) return n;
            throw new ScenarioFormatException(path, $"expected a non-negative integer, found {e.GetRawText()}");
        }
        if (e.ValueKind == JsonValueKind.String)
        {
            var s = e.GetString()!.Replace("_", "");
            UInt128 value;
            bool ok = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? UInt128.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
                : UInt128.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
            if (ok && value <= (UInt128)1 << 64) return value;
            throw new ScenarioFormatException(path, $"'{e.GetString()}' is not a number up to 2^64 (decimal, or hex with 0x)");
        }
        throw new ScenarioFormatException(path, $"expected a number, found {Describe(e)}");
    }

    private static byte[] HexBytes(JsonElement e, string path)
    {
        var s = String(e, path).Replace(" ", "");
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        try
        {
            return Convert.FromHexString(s);
        }
        catch (FormatException)
        {
            throw new ScenarioFormatException(path, "expected an even number of hex digits");
        }
    }

    private static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => $"\"{e.GetString()}\"",
        JsonValueKind.Null => "null",
        _ => e.GetRawText(),
    };

    // ------------------------------------------------------------------ writing

    /// <summary>Canonical JSON: fields in a fixed order, addresses and sizes in hex, defaults left out.</summary>
    public static string Write(Scenario scenario)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
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
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
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

    private static readonly Dictionary<RegionKind, string> KindNames = Kinds.ToDictionary(kv => kv.Value, kv => kv.Key);

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
                if (u.AccessLen is { } al) w.WriteNumber("accessLen", al); else w.WriteString("accessLen", "all");
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
                w.WriteStartArray("entries");
                foreach (var e in d.Entries)
                {
                    w.WriteStartObject();
                    w.WriteNumber("index", e.Index); w.WriteString("addr", Hex(e.Addr)); w.WriteNumber("len", e.Len);
                    if (e.Flags != 0) w.WriteNumber("flags", e.Flags);
                    if (e.Next != 0) w.WriteNumber("next", e.Next);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                break;
            case PublishOp p:
                w.WriteString("op", "publish");
                w.WriteStartArray("heads");
                foreach (var h in p.Heads) w.WriteNumberValue(h);
                w.WriteEndArray();
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
}
