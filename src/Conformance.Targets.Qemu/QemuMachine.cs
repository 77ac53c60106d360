using Conformance.Model;
using Conformance.Model.Scenarios;
using Conformance.Qemu;

namespace Conformance.Targets.Qemu;

/// <summary>
/// A QEMU machine as the model sees it, read from the running process once its driver has set the device
/// up: the layout of `info mtree -D` settled by `info mtree -f`, with the device's DMA address space given
/// the bounce budget the process was started with; the queue size the device reports and where the driver
/// put the rings. Scenarios that run on this QEMU are written on this layout.
/// </summary>
public sealed record QemuMachine(
    LayoutSpec Layout,
    string Source,
    /// <summary>The address space the device DMAs through: "memory", or its own bus-master space with a budget.</summary>
    string Space,
    int QueueSize,
    RingAddresses Rings,
    /// <summary>The dump files in the layout cache, for scenario files to name instead of inlining the layout.</summary>
    LayoutReference? LayoutFrom)
{
    /// <summary>The device's own DMA address space in QEMU's layout: its PCI bus-master space, named after the
    /// device. A virtio device uses it only with VIRTIO_F_ACCESS_PLATFORM (iommu_platform=on); otherwise it
    /// DMAs through address_space_memory, "memory" (hw/virtio/virtio-bus.c:virtio_bus_device_plugged).</summary>
    public const string DeviceSpace = "virtio-blk-pci";

    /// <summary>Where the layouts QEMU processes printed are kept, so a printed scenario can name them: the
    /// user's cache (beside scripts/fetch-qemu's), one pair of files per distinct dump.</summary>
    public static string LayoutCache => Path.Combine(Path.GetDirectoryName(QemuBinary.CacheDirectory)!, "layouts");

    /// <summary>The machine of the session's process (starting it if needed).</summary>
    public static QemuMachine Of(QemuBinary binary, VirtioBlkSession session)
    {
        var (tree, flat) = session.LayoutDumps();
        string source = $"QEMU {binary.Version}, {session.Transport} transport";
        var imported = MtreeDump.Import(tree, new MtreeImportOptions { Source = source, Flat = flat });
        // a budget comes with iommu_platform=on, which moves the device's DMA into its own address space
        var (space, budget) = session.MaxBounceBufferSize is { } b ? (DeviceSpace, b) : ("memory", ProfileFacts.DefaultMaxBounceBufferSize);
        var spaces = imported.Layout.AddressSpaces
            .Select(a => a.Name == space ? new AddressSpaceSpec(a.Name, a.Root, budget, a.RootIndex) : a)
            .ToArray();
        if (!spaces.Any(a => a.Name == space))
            throw new QemuException($"{source} prints no address space \"{space}\": the device's DMA cannot be modelled");
        LayoutReference? from = null;
        try
        {
            var (treeFile, flatFile) = KeepDumps(binary, session.Transport, tree, flat);
            var budgets = new Dictionary<string, ulong>();
            if (session.MaxBounceBufferSize is not null) budgets[space] = budget;
            from = new LayoutReference(treeFile, flatFile, budgets);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // then printed scenarios inline the layout
        }
        var (desc, avail, used) = session.Rings;
        return new QemuMachine(new LayoutSpec(imported.Layout.Regions, spaces, imported.Layout.Dirty), source, space, session.QueueSize,
            new RingAddresses(desc, avail, used), from);
    }

    /// <summary>Writes a process's dumps to the layout cache (named by version, transport and a hash of the text).</summary>
    private static (string Tree, string Flat) KeepDumps(QemuBinary binary, VirtioTransport transport, string tree, string flat)
    {
        Directory.CreateDirectory(LayoutCache);
        string stem = $"qemu-{binary.Version}-{transport.ToString().ToLowerInvariant()}-{MemoryTopology.StableHash(tree + flat):x8}";
        string treeFile = Path.Combine(LayoutCache, stem + ".mtree-D.txt"), flatFile = Path.Combine(LayoutCache, stem + ".flat.txt");
        if (!File.Exists(treeFile)) File.WriteAllText(treeFile, tree);
        if (!File.Exists(flatFile)) File.WriteAllText(flatFile, flat);
        return (treeFile, flatFile);
    }
}
