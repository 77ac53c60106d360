using Conformance.Model.Virtio;

namespace Conformance.Model.Targets;

/// <summary>Which deliberate bugs a model target has switched on: none for the reference model; a broken
/// variant is what a property must reject (docs/properties.md lists each one).</summary>
public sealed record Variant(Fault Fault, VirtioFault VirtioFault)
{
    public static readonly Variant Reference = new(Fault.None, VirtioFault.None);

    public static Variant Of(Fault fault) => new(fault, VirtioFault.None);

    public static Variant Of(VirtioFault fault) => new(Fault.None, fault);

    public bool IsReference => Fault == Fault.None && VirtioFault == VirtioFault.None;

    /// <summary>The name `--variant` takes ("" for the reference model).</summary>
    public string OptionValue =>
        VirtioFault != VirtioFault.None ? VirtioFault.ToString() : Fault != Fault.None ? Fault.ToString() : "";

    public override string ToString() => IsReference ? "reference model" : $"broken variant {OptionValue}";

    /// <summary>A variant by its `--variant` name: a memory-system fault, a virtio fault, or "none".</summary>
    public static Variant? Parse(string name)
    {
        if (string.Equals(name, "none", StringComparison.OrdinalIgnoreCase) || name.Length == 0) return Reference;
        if (Enum.TryParse<Fault>(name, ignoreCase: true, out var f) && Enum.IsDefined(f) && f != Fault.None) return Of(f);
        if (Enum.TryParse<VirtioFault>(name, ignoreCase: true, out var v) && Enum.IsDefined(v) && v != VirtioFault.None) return Of(v);
        return null;
    }
}
