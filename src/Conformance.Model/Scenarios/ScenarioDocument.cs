using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conformance.Model.Scenarios;

// The scenario file as System.Text.Json reads it: the operations are one polymorphic type told apart by
// "op", unknown fields are refused, required ones demanded and nulls refused where the format has none.
// What JSON cannot say (ranges, kinds, a region inside its parent) is checked when the document becomes
// a Scenario (ScenarioReading), with the JSON path of the offending value.

/// <summary>A number written as JSON number or as a string (decimal, or hex with 0x; '_' separators
/// allowed), up to 2^64 (region sizes reach it).</summary>
[JsonConverter(typeof(NumberConverter))]
internal readonly record struct Number(UInt128 Value);

/// <summary>Bytes written as a string of hex digits (spaces and a leading 0x allowed).</summary>
[JsonConverter(typeof(HexBytesConverter))]
internal sealed record HexBytes(byte[] Bytes);

internal sealed class NumberConverter : JsonConverter<Number>
{
    public override bool HandleNull => true;

    public override Number Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Number:
                if (reader.TryGetUInt64(out var n)) return new Number(n);
                throw new JsonException($"expected a non-negative integer, found {Encoding(ref reader)}");
            case JsonTokenType.String:
                var text = reader.GetString()!;
                var s = text.Replace("_", "");
                bool ok = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                    ? UInt128.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value)
                    : UInt128.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
                if (ok && value <= (UInt128)1 << 64) return new Number(value);
                throw new JsonException($"'{text}' is not a number up to 2^64 (decimal, or hex with 0x)");
            default:
                throw new JsonException($"expected a number, found {ScenarioReading.Describe(reader.TokenType)}");
        }
    }

    private static string Encoding(ref Utf8JsonReader reader) => System.Text.Encoding.UTF8.GetString(reader.ValueSpan);

    public override void Write(Utf8JsonWriter writer, Number value, JsonSerializerOptions options) =>
        writer.WriteStringValue("0x" + value.Value.ToString("x", CultureInfo.InvariantCulture));
}

internal sealed class HexBytesConverter : JsonConverter<HexBytes>
{
    public override bool HandleNull => true;

    public override HexBytes Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String) throw new JsonException($"expected a string, found {ScenarioReading.Describe(reader.TokenType)}");
        var s = reader.GetString()!.Replace(" ", "");
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        try
        {
            return new HexBytes(Convert.FromHexString(s));
        }
        catch (FormatException)
        {
            throw new JsonException("expected an even number of hex digits");
        }
    }

    public override void Write(Utf8JsonWriter writer, HexBytes value, JsonSerializerOptions options) =>
        writer.WriteStringValue(Convert.ToHexString(value.Bytes).ToLowerInvariant());
}

/// <summary>The whole file. "layout" is a file name, a reference object or an inline layout: read as JSON
/// and told apart when the document becomes a Scenario.</summary>
internal sealed class ScenarioFile
{
    [JsonPropertyName("description")] public string? Description { get; init; }
    [JsonPropertyName("property")] public string? Property { get; init; }
    [JsonPropertyName("profile")] public string? Profile { get; init; }
    [JsonPropertyName("layout")] public required JsonElement Layout { get; init; }
    [JsonPropertyName("ops")] public required List<OpDocument> Ops { get; init; }
    [JsonPropertyName("threads")] public List<List<OpDocument>>? Threads { get; init; }
}

/// <summary>A layout by reference: an `info mtree` dump, optionally QEMU's flat view of the same machine,
/// and bounce budgets by address space.</summary>
internal sealed class LayoutReferenceDocument
{
    [JsonPropertyName("mtree")] public required string Mtree { get; init; }
    [JsonPropertyName("flat")] public string? Flat { get; init; }
    [JsonPropertyName("maxBounceBufferSize")] public Dictionary<string, Number>? MaxBounceBufferSize { get; init; }
}

internal sealed class LayoutDocument
{
    [JsonPropertyName("regions")] public required List<RegionDocument> Regions { get; init; }
    [JsonPropertyName("addressSpaces")] public required List<AddressSpaceDocument> AddressSpaces { get; init; }
    [JsonPropertyName("dirtyLogging")] public DirtyLoggingDocument? DirtyLogging { get; init; }
}

internal sealed class DirtyLoggingDocument
{
    [JsonPropertyName("migration")] public bool Migration { get; init; } = true;
    [JsonPropertyName("code")] public bool Code { get; init; } = true;
}

internal sealed class AddressSpaceDocument
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("root")] public required string Root { get; init; }
    [JsonPropertyName("rootIndex")] public Number? RootIndex { get; init; }
    [JsonPropertyName("maxBounceBufferSize")] public Number? MaxBounceBufferSize { get; init; }
}

internal sealed class RegionDocument
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("kind")] public required string Kind { get; init; }
    [JsonPropertyName("size")] public required Number Size { get; init; }
    [JsonPropertyName("addr")] public Number? Addr { get; init; }
    [JsonPropertyName("priority")] public int Priority { get; init; }
    [JsonPropertyName("enabled")] public bool Enabled { get; init; } = true;
    [JsonPropertyName("readonly")] public bool Readonly { get; init; }
    [JsonPropertyName("romdMode")] public bool RomdMode { get; init; } = true;
    [JsonPropertyName("logVga")] public bool LogVga { get; init; }
    [JsonPropertyName("nonvolatile")] public bool Nonvolatile { get; init; }
    [JsonPropertyName("terminates")] public bool Terminates { get; init; }
    [JsonPropertyName("target")] public string? Target { get; init; }
    [JsonPropertyName("targetIndex")] public Number? TargetIndex { get; init; }
    [JsonPropertyName("offset")] public Number? Offset { get; init; }
    [JsonPropertyName("owner")] public string? Owner { get; init; }
    [JsonPropertyName("seed")] public Number? Seed { get; init; }
    [JsonPropertyName("access")] public AccessDocument? Access { get; init; }
    [JsonPropertyName("subregions")] public List<RegionDocument>? Subregions { get; init; }
}

internal sealed class AccessDocument
{
    [JsonPropertyName("validMax")] public Number? ValidMax { get; init; }
    [JsonPropertyName("implMin")] public Number? ImplMin { get; init; }
    [JsonPropertyName("implMax")] public Number? ImplMax { get; init; }
    [JsonPropertyName("unaligned")] public bool Unaligned { get; init; }
}

/// <summary>One operation; "op" says which (the discriminator may come anywhere in the object).</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "op", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(MapDocument), "map")]
[JsonDerivedType(typeof(WriteMappedDocument), "writeMapped")]
[JsonDerivedType(typeof(ReadMappedDocument), "readMapped")]
[JsonDerivedType(typeof(UnmapDocument), "unmap")]
[JsonDerivedType(typeof(ReadDocument), "read")]
[JsonDerivedType(typeof(WriteDocument), "write")]
[JsonDerivedType(typeof(RegisterClientDocument), "registerClient")]
[JsonDerivedType(typeof(UnregisterClientDocument), "unregisterClient")]
[JsonDerivedType(typeof(RunBottomHalvesDocument), "runBottomHalves")]
[JsonDerivedType(typeof(VirtioSetupDocument), "virtioSetup")]
[JsonDerivedType(typeof(DescriptorsDocument), "descriptors")]
[JsonDerivedType(typeof(PublishDocument), "publish")]
[JsonDerivedType(typeof(AvailIdxDocument), "availIdx")]
[JsonDerivedType(typeof(SuppressInterruptsDocument), "suppressInterrupts")]
[JsonDerivedType(typeof(KickDocument), "kick")]
[JsonDerivedType(typeof(CompleteIoDocument), "completeIo")]
[JsonDerivedType(typeof(PopDocument), "pop")]
[JsonDerivedType(typeof(PushDocument), "push")]
[JsonDerivedType(typeof(DetachDocument), "detach")]
[JsonDerivedType(typeof(UnpopDocument), "unpop")]
[JsonDerivedType(typeof(VirtioResetDocument), "virtioReset")]
[JsonDerivedType(typeof(MapOrWaitDocument), "mapOrWait")]
[JsonDerivedType(typeof(ServeQueueDocument), "serveQueue")]
internal abstract class OpDocument;

internal class MapDocument : OpDocument
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("as")] public required string Space { get; init; }
    [JsonPropertyName("addr")] public required Number Addr { get; init; }
    [JsonPropertyName("len")] public required Number Len { get; init; }
    [JsonPropertyName("write")] public required bool Write { get; init; }
}

internal sealed class WriteMappedDocument : OpDocument
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("offset")] public Number? Offset { get; init; }
    [JsonPropertyName("data")] public HexBytes? Data { get; init; }
    [JsonPropertyName("fillByte")] public Number? FillByte { get; init; }
}

internal sealed class ReadMappedDocument : OpDocument
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("offset")] public Number? Offset { get; init; }
    [JsonPropertyName("len")] public Number? Len { get; init; }
}

/// <summary>"accessLen": a number, or "all" (the whole mapping, as leaving it out); or "percent" of the
/// granted length.</summary>
internal sealed class UnmapDocument : OpDocument
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("accessLen")] public JsonElement? AccessLen { get; init; }
    [JsonPropertyName("percent")] public Number? Percent { get; init; }
}

/// <summary>A map that waits as a map client while it fails (threads only).</summary>
internal sealed class MapOrWaitDocument : MapDocument
{
    [JsonPropertyName("client")] public required string Client { get; init; }
}

internal sealed class ReadDocument : OpDocument
{
    [JsonPropertyName("as")] public required string Space { get; init; }
    [JsonPropertyName("addr")] public required Number Addr { get; init; }
    [JsonPropertyName("len")] public required Number Len { get; init; }
}

internal sealed class WriteDocument : OpDocument
{
    [JsonPropertyName("as")] public required string Space { get; init; }
    [JsonPropertyName("addr")] public required Number Addr { get; init; }
    [JsonPropertyName("data")] public required HexBytes Data { get; init; }
}

/// <summary>registerClient and unregisterClient name a map client on an address space.</summary>
internal abstract class ClientDocument : OpDocument
{
    [JsonPropertyName("as")] public required string Space { get; init; }
    [JsonPropertyName("client")] public required string Client { get; init; }
}

internal sealed class RegisterClientDocument : ClientDocument;

internal sealed class UnregisterClientDocument : ClientDocument;

internal sealed class RunBottomHalvesDocument : OpDocument;

/// <summary>A split queue's place: the address space, its size and the three rings (virtioSetup, serveQueue).</summary>
internal abstract class QueueDocument : OpDocument
{
    [JsonPropertyName("as")] public required string Space { get; init; }
    [JsonPropertyName("queueSize")] public required Number QueueSize { get; init; }
    [JsonPropertyName("desc")] public required Number Desc { get; init; }
    [JsonPropertyName("avail")] public required Number Avail { get; init; }
    [JsonPropertyName("used")] public required Number Used { get; init; }
}

internal sealed class VirtioSetupDocument : QueueDocument
{
    [JsonPropertyName("eventIdx")] public bool EventIdx { get; init; }
    [JsonPropertyName("indirect")] public bool Indirect { get; init; }
    [JsonPropertyName("version1")] public bool Version1 { get; init; }
    [JsonPropertyName("diskSectors")] public Number? DiskSectors { get; init; }
    [JsonPropertyName("serial")] public string Serial { get; init; } = "";
}

internal sealed class DescriptorsDocument : OpDocument
{
    [JsonPropertyName("table")] public Number? Table { get; init; }
    [JsonPropertyName("entries")] public required List<DescriptorDocument> Entries { get; init; }
}

internal sealed class DescriptorDocument
{
    [JsonPropertyName("index")] public required Number Index { get; init; }
    [JsonPropertyName("addr")] public required Number Addr { get; init; }
    [JsonPropertyName("len")] public required Number Len { get; init; }
    [JsonPropertyName("flags")] public Number? Flags { get; init; }
    [JsonPropertyName("next")] public Number? Next { get; init; }
}

internal sealed class PublishDocument : OpDocument
{
    [JsonPropertyName("heads")] public required List<Number> Heads { get; init; }
}

internal sealed class AvailIdxDocument : OpDocument
{
    [JsonPropertyName("idx")] public required Number Idx { get; init; }
}

internal sealed class SuppressInterruptsDocument : OpDocument
{
    [JsonPropertyName("flags")] public Number? Flags { get; init; }
    [JsonPropertyName("usedEvent")] public Number? UsedEvent { get; init; }
}

internal sealed class KickDocument : OpDocument;

internal sealed class CompleteIoDocument : OpDocument;

internal sealed class PopDocument : OpDocument
{
    [JsonPropertyName("element")] public required string Element { get; init; }
}

/// <summary>push, detach and unpop release a popped element with a written length.</summary>
internal abstract class ReleaseDocument : OpDocument
{
    [JsonPropertyName("element")] public required string Element { get; init; }
    [JsonPropertyName("len")] public Number? Len { get; init; }
}

internal sealed class PushDocument : ReleaseDocument;

internal sealed class DetachDocument : ReleaseDocument;

internal sealed class UnpopDocument : ReleaseDocument;

internal sealed class VirtioResetDocument : OpDocument;

internal sealed class ServeQueueDocument : QueueDocument
{
    [JsonPropertyName("entries")] public required List<DescriptorDocument> Entries { get; init; }
    [JsonPropertyName("heads")] public required List<Number> Heads { get; init; }
}
