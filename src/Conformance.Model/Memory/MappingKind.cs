namespace Conformance.Model;

public enum MappingKind
{
    /// <summary>A host pointer straight into the RAMBlock.</summary>
    Direct,
    /// <summary>A bounce buffer standing in for non-direct memory.</summary>
    Bounce,
}
