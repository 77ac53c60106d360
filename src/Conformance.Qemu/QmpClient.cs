using System.Text.Json;
using System.Text.Json.Nodes;

namespace Conformance.Qemu;

/// <summary>QMP: JSON commands and replies, events skipped; human-monitor-command for `info mtree` and friends.</summary>
public sealed class QmpClient
{
    private readonly LineChannel _channel;

    public QmpClient(LineChannel channel)
    {
        _channel = channel;
        _channel.ReadLine();   // greeting
        Execute("qmp_capabilities");
    }

    public JsonNode? Execute(string command, JsonObject? arguments = null)
    {
        var request = new JsonObject { ["execute"] = command };
        if (arguments is not null) request["arguments"] = arguments;
        _channel.Send(request.ToJsonString());
        for (; ; )
        {
            var reply = JsonNode.Parse(_channel.ReadLine())!.AsObject();
            if (reply.ContainsKey("event")) continue;
            if (reply["error"] is { } error) throw new QemuException($"QMP {command} failed: {error.ToJsonString()}");
            return reply["return"];
        }
    }

    public string HumanMonitor(string commandLine) =>
        Execute("human-monitor-command", new JsonObject { ["command-line"] = commandLine })?.GetValue<string>().Replace("\r\n", "\n") ?? "";
}
