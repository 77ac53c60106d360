using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Conformance.Model.Scenarios;

/// <summary>
/// Turns a scenario file into a <see cref="Scenario"/>: System.Text.Json reads the structure
/// (<see cref="ScenarioFile"/>: operations told apart by "op", unknown fields refused, required ones
/// demanded), then the values are checked with their JSON paths. Every refusal is one
/// <see cref="ScenarioFormatException"/> line that starts with the path.
/// </summary>
internal static partial class ScenarioReading
{
    private static readonly JsonSerializerOptions Options = new()
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        AllowOutOfOrderMetadataProperties = true,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    internal static readonly string OperationNames = string.Join(", ",
        typeof(OpDocument).GetCustomAttributes<JsonDerivedTypeAttribute>().Select(a => (string)a.TypeDiscriminator!));

    internal static Scenario Read(JsonElement root, Func<LayoutReference, LayoutSpec>? resolve)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new ScenarioFormatException("$", $"expected an object, found {Describe(root)}");
        RefuseNulls(root, "$");
        var file = Deserialize<ScenarioFile>(root, "$");
        var profile = file.Profile is null ? Profile.Qemu72 : ParseProfile(file.Profile, "$.profile");
        var (layout, reference) = ReadLayout(file.Layout, resolve);
        var ids = new HashSet<string>();
        var ops = ReadOps(file.Ops, "$.ops", ids, onThread: false);
        var threads = new List<IReadOnlyList<ScenarioOp>>();
        if (file.Threads is { } listed)
        {
            if (listed.Count == 0) throw new ScenarioFormatException("$.threads", "expected at least one thread (leave 'threads' out for a sequential scenario)");
            for (int t = 0; t < listed.Count; t++) threads.Add(ReadOps(listed[t], $"$.threads[{t}]", ids, onThread: true));
        }
        return new Scenario(profile, layout, ops) { LayoutFrom = reference, Property = file.Property, Description = file.Description, Threads = threads };
    }

    /// <summary>One list of operations: the scenario's, or one thread's. Mapping ids are unique across all of
    /// them; mapOrWait and serveQueue belong to threads.</summary>
    private static List<ScenarioOp> ReadOps(List<OpDocument> documents, string path, HashSet<string> ids, bool onThread)
    {
        var ops = new List<ScenarioOp>(documents.Count);
        for (int i = 0; i < documents.Count; i++)
        {
            string at = $"{path}[{i}]";
            var op = ToOp(documents[i], at);
            if (!onThread && op is MapOrWaitOp or ServeQueueOp)
                throw new ScenarioFormatException(at + ".op", "runs only on a thread of a concurrency case ($.threads): on one thread nothing could free what it waits for");
            string? id = op switch { MapOp m => m.Id, MapOrWaitOp w => w.Id, _ => null };
            if (id is not null && !ids.Add(id)) throw new ScenarioFormatException(at + ".id", $"mapping id '{id}' is used by an earlier map");
            ops.Add(op);
        }
        return ops;
    }

    /// <summary>The format has no nulls: a field is given or left out.</summary>
    private static void RefuseNulls(JsonElement e, string path)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Null:
                throw new ScenarioFormatException(path, "expected a value, found null (leave an optional field out instead)");
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject()) RefuseNulls(p.Value, $"{path}.{p.Name}");
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in e.EnumerateArray()) RefuseNulls(item, $"{path}[{i++}]");
                break;
        }
    }

    internal static Profile ParseProfile(string s, string path) => s switch
    {
        "Qemu72" or "qemu72" => Profile.Qemu72,
        "Qemu92" or "qemu92" => Profile.Qemu92,
        _ => throw new ScenarioFormatException(path, $"unknown profile '{s}' (expected Qemu72 or Qemu92)"),
    };

    // ------------------------------------------------------------------ the layout

    /// <summary>"layout": a file name, `{"mtree": …}` (read by <paramref name="resolve"/>), or an inline layout.</summary>
    private static (LayoutSpec, LayoutReference?) ReadLayout(JsonElement e, Func<LayoutReference, LayoutSpec>? resolve)
    {
        const string path = "$.layout";
        LayoutReference reference;
        if (e.ValueKind == JsonValueKind.String) reference = new LayoutReference(e.GetString()!, null, new Dictionary<string, ulong>());
        else if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("mtree", out _))
        {
            var r = Deserialize<LayoutReferenceDocument>(e, path);
            var budgets = new Dictionary<string, ulong>();
            foreach (var (space, bytes) in r.MaxBounceBufferSize ?? new())
                budgets[space] = U64(bytes, $"{path}.maxBounceBufferSize.{space}");
            reference = new LayoutReference(r.Mtree, r.Flat, budgets);
        }
        else
        {
            if (e.ValueKind != JsonValueKind.Object) throw new ScenarioFormatException(path, $"expected a layout object or a file name, found {Describe(e)}");
            return (ToLayout(Deserialize<LayoutDocument>(e, path), path), null);
        }
        if (resolve is null) throw new ScenarioFormatException(path, $"the layout is the file '{reference.Mtree}', and nothing here reads files");
        try
        {
            return (resolve(reference), reference);
        }
        catch (LayoutError err)
        {
            throw new ScenarioFormatException(path, $"{reference.Mtree}: {err.Message}");
        }
    }

    internal static LayoutSpec ToLayout(LayoutDocument d, string path)
    {
        var regions = d.Regions.Select((r, i) => ToRegion(r, $"{path}.regions[{i}]")).ToList();
        var spaces = d.AddressSpaces.Select((a, i) =>
        {
            string p = $"{path}.addressSpaces[{i}]";
            ulong budget = a.MaxBounceBufferSize is { } b ? U64(b, p + ".maxBounceBufferSize") : ProfileFacts.DefaultMaxBounceBufferSize;
            if (budget > 1 << 26) throw new ScenarioFormatException(p + ".maxBounceBufferSize", "budgets above 64 MiB are not modelled");
            // rootIndex picks one of several top-level regions of the same name (imported dumps: every PCI
            // device has a "bus master container"); it must name a region called `root`
            int? rootIndex = null;
            if (a.RootIndex is { } ri)
            {
                ulong index = U64(ri, p + ".rootIndex");
                if (index >= (ulong)regions.Count) throw new ScenarioFormatException(p + ".rootIndex", $"there are {regions.Count} top-level regions");
                if (regions[(int)index].Name != a.Root)
                    throw new ScenarioFormatException(p + ".rootIndex", $"region {index} is '{regions[(int)index].Name}', not '{a.Root}'");
                rootIndex = (int)index;
            }
            return new AddressSpaceSpec(a.Name, a.Root, budget, rootIndex);
        }).ToList();
        var dirty = d.DirtyLogging is { } dl ? new DirtyLogging(dl.Migration, dl.Code) : DirtyLogging.Default;
        if (spaces.Count == 0) throw new ScenarioFormatException(path + ".addressSpaces", "a layout needs at least one address space");
        return new LayoutSpec(regions, spaces, dirty);
    }

    internal static readonly Dictionary<string, RegionKind> Kinds = new()
    {
        ["container"] = RegionKind.Container,
        ["io"] = RegionKind.Io,
        ["ram"] = RegionKind.Ram,
        ["rom"] = RegionKind.Rom,
        ["romDevice"] = RegionKind.RomDevice,
        ["ramDevice"] = RegionKind.RamDevice,
        ["alias"] = RegionKind.Alias,
    };

    private static RegionSpec ToRegion(RegionDocument r, string path)
    {
        if (r.Name.Length == 0) throw new ScenarioFormatException(path + ".name", "a region needs a name");
        if (!Kinds.TryGetValue(r.Kind, out var kind))
            throw new ScenarioFormatException(path + ".kind", $"unknown kind '{r.Kind}' (expected {string.Join(", ", Kinds.Keys)})");
        var size = r.Size.Value;
        if (size == 0) throw new ScenarioFormatException(path + ".size", "a region cannot be empty");
        if (size > (UInt128)1 << 64) throw new ScenarioFormatException(path + ".size", "a region cannot exceed 2^64 bytes");
        ulong addr = r.Addr is { } a ? U64(a, path + ".addr") : 0;
        if ((UInt128)addr + size > (UInt128)1 << 64) throw new ScenarioFormatException(path + ".addr", "the region would extend past 2^64");
        AccessRules? access = null;
        if (r.Access is { } ac)
        {
            string ap = path + ".access";
            uint Size(Number? v, string field) => v is { } n ? AccessSize(n, $"{ap}.{field}") : 0;
            access = new AccessRules(Size(ac.ValidMax, "validMax"), Size(ac.ImplMin, "implMin"), Size(ac.ImplMax, "implMax"), ac.Unaligned);
        }
        var subs = (r.Subregions ?? new()).Select((c, i) => ToRegion(c, $"{path}.subregions[{i}]")).ToList();
        for (int i = 0; i < subs.Count; i++)
            if ((UInt128)subs[i].Addr + subs[i].Size > size && kind != RegionKind.Container && kind != RegionKind.Io)
                throw new ScenarioFormatException($"{path}.subregions[{i}]", "subregion outside its parent");
        return new RegionSpec
        {
            Name = r.Name,
            Kind = kind,
            Size = size,
            Addr = addr,
            Priority = r.Priority,
            Enabled = r.Enabled,
            Readonly = r.Readonly,
            RomdMode = r.RomdMode,
            LogVga = r.LogVga,
            Nonvolatile = r.Nonvolatile,
            Terminates = r.Terminates,
            AliasTarget = r.Target,
            AliasTargetOccurrence = r.TargetIndex is { } ti ? (int)U64(ti, path + ".targetIndex", int.MaxValue) : null,
            AliasOffset = r.Offset is { } off ? U64(off, path + ".offset") : 0,
            Owner = r.Owner,
            Seed = r.Seed is { } sd ? (uint)U64(sd, path + ".seed", uint.MaxValue) : null,
            Access = access,
            Subregions = subs,
        };
    }

    private static uint AccessSize(Number n, string path)
    {
        ulong v = U64(n, path, 8);
        if (v is not (0 or 1 or 2 or 4 or 8)) throw new ScenarioFormatException(path, "an access size is 1, 2, 4 or 8");
        return (uint)v;
    }

    // ------------------------------------------------------------------ the operations

    private static ScenarioOp ToOp(OpDocument d, string path)
    {
        ulong U(Number n, string field, ulong max = ulong.MaxValue) => U64(n, $"{path}.{field}", max);
        ulong? Opt(Number? n, string field, ulong max = ulong.MaxValue) => n is { } v ? U64(v, $"{path}.{field}", max) : null;
        switch (d)
        {
            case MapOrWaitDocument mw:
                return new MapOrWaitOp(mw.Id, mw.Space, U(mw.Addr, "addr"), U(mw.Len, "len"), mw.Write, mw.Client);
            case MapDocument m:
                return new MapOp(m.Id, m.Space, U(m.Addr, "addr"), U(m.Len, "len"), m.Write);
            case WriteMappedDocument w:
                if ((w.Data is null) == (w.FillByte is null)) throw new ScenarioFormatException(path, "give exactly one of 'data' (hex bytes) and 'fillByte'");
                return new WriteMappedOp(w.Id, Opt(w.Offset, "offset") ?? 0, w.Data?.Bytes, w.FillByte is { } f ? (byte)U(f, "fillByte", 255) : null);
            case ReadMappedDocument r:
                return new ReadMappedOp(r.Id, Opt(r.Offset, "offset") ?? 0, Opt(r.Len, "len"));
            case UnmapDocument u:
                ulong? accessLen = null;
                if (u.AccessLen is { } al && !(al.ValueKind == JsonValueKind.String && al.GetString() == "all"))
                    accessLen = U(Deserialize<Number>(al, path + ".accessLen"), "accessLen");
                if (u.Percent is not { } percent) return new UnmapOp(u.Id, accessLen);
                if (u.AccessLen is not null) throw new ScenarioFormatException(path, "give at most one of 'accessLen' and 'percent'");
                return new UnmapOp(u.Id, null) { AccessPercent = (int)U(percent, "percent", 100) };
            case ServeQueueDocument sq:
                return new ServeQueueOp(sq.Space, QueueSize(sq, path), U(sq.Desc, "desc"), U(sq.Avail, "avail"), U(sq.Used, "used"), Entries(sq.Entries, path),
                    Heads(sq.Heads, path));
            case ReadDocument r:
                return new ReadOp(r.Space, U(r.Addr, "addr"), U(r.Len, "len", 1 << 20));
            case WriteDocument w:
                return new WriteOp(w.Space, U(w.Addr, "addr"), w.Data.Bytes);
            case RegisterClientDocument c:
                return new RegisterClientOp(c.Space, c.Client);
            case UnregisterClientDocument c:
                return new UnregisterClientOp(c.Space, c.Client);
            case RunBottomHalvesDocument:
                return new RunBottomHalvesOp();
            case VirtioSetupDocument v:
                return new VirtioSetupOp(v.Space, QueueSize(v, path), U(v.Desc, "desc"), U(v.Avail, "avail"), U(v.Used, "used"), v.EventIdx, v.Indirect, v.Version1,
                    (int)(Opt(v.DiskSectors, "diskSectors", 1 << 16) ?? 128), v.Serial);
            case DescriptorsDocument ds:
                return new DescriptorsOp(Opt(ds.Table, "table"), Entries(ds.Entries, path));
            case PublishDocument p:
                return new PublishOp(Heads(p.Heads, path));
            case AvailIdxDocument a:
                return new AvailIdxOp((ushort)U(a.Idx, "idx", 65535));
            case SuppressInterruptsDocument s:
                return new InterruptSuppressionOp((ushort)(Opt(s.Flags, "flags", ushort.MaxValue) ?? 0), (ushort)(Opt(s.UsedEvent, "usedEvent", ushort.MaxValue) ?? 0));
            case KickDocument:
                return new KickOp();
            case CompleteIoDocument:
                return new CompleteIoOp();
            case PopDocument p:
                return new PopOp(p.Element);
            case ReleaseDocument r:
                string how = r switch { PushDocument => "push", DetachDocument => "detach", _ => "unpop" };
                return new ReleaseOp(r.Element, how, (uint)(Opt(r.Len, "len", uint.MaxValue) ?? 0));
            case VirtioResetDocument:
                return new VirtioResetOp();
            default:
                throw new ScenarioFormatException(path + ".op", $"unknown operation (expected {OperationNames})");
        }
    }

    /// <summary>A split queue's size: a power of two from 1 to 1024 (VIRTIO 1.2 §2.7).</summary>
    private static int QueueSize(QueueDocument q, string path)
    {
        int size = (int)U64(q.QueueSize, path + ".queueSize", 1024);
        if (size == 0 || (size & (size - 1)) != 0) throw new ScenarioFormatException(path + ".queueSize", "a split queue size is a power of two from 1 to 1024");
        return size;
    }

    private static List<ushort> Heads(List<Number> heads, string path) =>
        heads.Select((h, i) => (ushort)U64(h, $"{path}.heads[{i}]", 65535)).ToList();

    private static List<DescriptorEntry> Entries(List<DescriptorDocument> entries, string path) =>
        entries.Select((e, i) =>
        {
            string dp = $"{path}.entries[{i}]";
            return new DescriptorEntry((int)U64(e.Index, dp + ".index", 65535), U64(e.Addr, dp + ".addr"), (uint)U64(e.Len, dp + ".len", uint.MaxValue),
                (ushort)(e.Flags is { } fl ? U64(fl, dp + ".flags", ushort.MaxValue) : 0), (ushort)(e.Next is { } nx ? U64(nx, dp + ".next", ushort.MaxValue) : 0));
        }).ToList();

    private static ulong U64(Number n, string path, ulong max = ulong.MaxValue)
    {
        if (n.Value > max) throw new ScenarioFormatException(path, $"{n.Value} is larger than {max}");
        return (ulong)n.Value;
    }

    // ------------------------------------------------------------------ System.Text.Json's refusals, in our words

    /// <summary>Reads <paramref name="e"/> (found at <paramref name="at"/>) as <typeparamref name="T"/>, turning
    /// System.Text.Json's refusals into one line that starts with the JSON path.</summary>
    internal static T Deserialize<T>(JsonElement e, string at)
    {
        try
        {
            return e.Deserialize<T>(Options) ?? throw new ScenarioFormatException(at, $"expected {Expected(typeof(T))}, found null");
        }
        catch (JsonException x)
        {
            throw Translate(x.Message, x.Path, at, e);
        }
        catch (NotSupportedException x)
        {
            throw Translate(x.Message, PathIn(x.Message), at, e);
        }
    }

    /// <summary>Joins a path System.Text.Json reports (from the deserialized value's root, "$…") onto where
    /// that value sits in the file.</summary>
    private static string Join(string at, string? relative) =>
        relative is null || relative == "$" ? at : at + relative[1..];

    private static string? PathIn(string message) => PathPattern().Match(message) is { Success: true } m ? m.Groups[1].Value : null;

    private static ScenarioFormatException Translate(string message, string? relative, string at, JsonElement root)
    {
        string path = Join(at, relative);
        string text = PathPattern().Replace(message, "").Trim();
        if (UnmappedPattern().Match(text) is { Success: true } unmapped)
        {
            var type = typeof(ScenarioReading).Assembly.GetType(unmapped.Groups[2].Value);
            string allowed = type is null ? "" : $" (allowed here: {string.Join(", ", JsonNames(type))})";
            // the path names the object; the field is the unmapped one
            string field = unmapped.Groups[1].Value;
            return new ScenarioFormatException(path.EndsWith("." + field, StringComparison.Ordinal) ? path : $"{path}.{field}", "unknown field" + allowed);
        }
        if (MissingPattern().Match(text) is { Success: true } missing)
            return new ScenarioFormatException(path, $"missing field '{missing.Groups[1].Value}'");
        if (DiscriminatorPattern().Match(text) is { Success: true } unknownOp)
            return new ScenarioFormatException(path.EndsWith(".op", StringComparison.Ordinal) ? path : path + ".op",
                $"unknown operation '{unknownOp.Groups[1].Value}' (expected {OperationNames})");
        if (text.Contains("abstract types", StringComparison.Ordinal) || text.Contains("type discriminator", StringComparison.Ordinal))
            return new ScenarioFormatException(path, "missing field 'op' (or it is not a string)");
        if (NullPattern().Match(text) is { Success: true })
            return new ScenarioFormatException(path, "expected a value, found null");
        if (ConvertPattern().Match(text) is { Success: true } convert)
            return new ScenarioFormatException(path, $"expected {Expected(convert.Groups[1].Value.TrimEnd('.'))}, found {Describe(At(root, relative))}");
        return new ScenarioFormatException(path, text);
    }

    /// <summary>The element a relative path names, if it can be followed (for "found …" in messages).</summary>
    private static JsonElement? At(JsonElement root, string? relative)
    {
        if (relative is null) return null;
        var e = root;
        foreach (Match step in StepPattern().Matches(relative))
        {
            if (step.Groups[1].Success)
            {
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(step.Groups[1].Value, out e)) return null;
            }
            else
            {
                int i = int.Parse(step.Groups[2].Value);
                if (e.ValueKind != JsonValueKind.Array || i >= e.GetArrayLength()) return null;
                e = e[i];
            }
        }
        return e;
    }

    private static IEnumerable<string> JsonNames(Type type) =>
        type.GetProperties().Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name).OfType<string>()
            .Prepend(typeof(OpDocument).IsAssignableFrom(type) ? "op" : null).OfType<string>();

    private static string Expected(string clrType) => clrType switch
    {
        "System.Boolean" => "true or false",
        "System.String" => "a string",
        "System.Int32" => "a 32-bit integer",
        var t when t.StartsWith("System.Collections.Generic.List", StringComparison.Ordinal) => "an array",
        var t when t.StartsWith("System.Collections.Generic.Dictionary", StringComparison.Ordinal) => "an object of name -> value",
        _ => "an object",
    };

    private static string Expected(Type t) => Expected(t.FullName ?? t.Name);

    internal static string Describe(JsonElement? e) => e is not { } v ? "something else" : v.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => $"\"{v.GetString()}\"",
        JsonValueKind.Null => "null",
        _ => v.GetRawText(),
    };

    internal static string Describe(JsonTokenType t) => t switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.Null => "null",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.String => "a string",
        _ => t.ToString(),
    };

    [GeneratedRegex(@"\s*Path: (\$\S*) \|.*$", RegexOptions.Singleline)]
    private static partial Regex PathPattern();

    [GeneratedRegex(@"The JSON property '([^']*)' could not be mapped to any \.NET member contained in type '([^']*)'")]
    private static partial Regex UnmappedPattern();

    [GeneratedRegex(@"missing required properties including: '([^']*)'")]
    private static partial Regex MissingPattern();

    [GeneratedRegex(@"unrecognized type discriminator id '([^']*)'")]
    private static partial Regex DiscriminatorPattern();

    [GeneratedRegex(@"doesn't allow (getting|setting) null values|does not allow null values")]
    private static partial Regex NullPattern();

    [GeneratedRegex(@"could not be converted to ([\w.`\[\],]+)")]
    private static partial Regex ConvertPattern();

    [GeneratedRegex(@"\.([^.\[]+)|\[(\d+)\]")]
    private static partial Regex StepPattern();
}
