namespace Conformance.Model;

/// <summary>A device callback, with the name of the region it went to.</summary>
public readonly record struct DeviceAccess(string Region, MmioAccess Access);
