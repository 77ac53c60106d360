namespace Conformance.Model.Scenarios;

/// <summary>One operation of a scenario: what a device model or the main loop does to guest memory.</summary>
public abstract record ScenarioOp;

/// <summary>address_space_map. <see cref="Id"/> names the mapping for later operations.</summary>
public sealed record MapOp(string Id, string Space, ulong Addr, ulong Len, bool Write) : ScenarioOp;

/// <summary>The caller writes through a mapping: <see cref="Data"/> at <see cref="Offset"/>, or, when
/// <see cref="FillByte"/> is set, that byte from <see cref="Offset"/> to the end of the mapping.</summary>
public sealed record WriteMappedOp(string Id, ulong Offset, byte[]? Data, byte? FillByte) : ScenarioOp;

/// <summary>The caller reads through a mapping; null <see cref="Len"/> reads to the end of the mapping.</summary>
public sealed record ReadMappedOp(string Id, ulong Offset, ulong? Len) : ScenarioOp;

/// <summary>address_space_unmap with access_len; null <see cref="AccessLen"/> means the whole mapped length.</summary>
public sealed record UnmapOp(string Id, ulong? AccessLen) : ScenarioOp
{
    /// <summary>access_len as a share of the length the map granted (floor of length × percent / 100), for
    /// threads that cannot know how much of their request a contended map granted; replaces
    /// <see cref="AccessLen"/> when set.</summary>
    public int? AccessPercent { get; init; }
}

/// <summary>address_space_read.</summary>
public sealed record ReadOp(string Space, ulong Addr, ulong Len) : ScenarioOp;

/// <summary>address_space_write.</summary>
public sealed record WriteOp(string Space, ulong Addr, byte[] Data) : ScenarioOp;

/// <summary>Register a map client (a bottom half named <see cref="Client"/>).</summary>
public sealed record RegisterClientOp(string Space, string Client) : ScenarioOp;

public sealed record UnregisterClientOp(string Space, string Client) : ScenarioOp;

/// <summary>The main loop runs every scheduled bottom half.</summary>
public sealed record RunBottomHalvesOp : ScenarioOp;

/// <summary>
/// A device on a thread of a concurrency case maps the way QEMU's dma-helpers do: address_space_map, and
/// while that fails, register map client <see cref="Client"/>, wait until its bottom half has run, and map
/// again. Only in <see cref="Scenario.Threads"/>: on one thread nothing could free the space it waits for.
/// </summary>
public sealed record MapOrWaitOp(string Id, string Space, ulong Addr, ulong Len, bool Write, string Client) : ScenarioOp;
