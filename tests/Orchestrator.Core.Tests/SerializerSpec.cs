using System.Reflection;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Configuration;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Serialization;
using Orchestrator.Core.Settings;

namespace Orchestrator.Core.Tests;

/// <summary>
/// The serializer audit (TESTING.md recipe 11): by reflection, every type that implements the protocol
/// marker round-trips through our serializer with every field intact, and the shipped configuration
/// binds each of them to it (none falls back to Akka's JSON serializer).
/// </summary>
public sealed class SerializerSpec : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("serializer-spec",
        // exit-clr (shipped for nodes) would end the test host when the system terminates.
        ConfigurationFactory.ParseString("akka.actor.provider = local\nakka.coordinated-shutdown.exit-clr = off\nakka.coordinated-shutdown.run-by-clr-shutdown-hook = off")
            .WithFallback(OrchestratorSettings.DefaultConfig()));

    public static IEnumerable<object[]> MessageTypes() =>
        typeof(IOrchestratorMessage).Assembly.GetTypes()
            .Where(t => typeof(IOrchestratorMessage).IsAssignableFrom(t) && t is { IsInterface: false, IsAbstract: false })
            .Select(t => new object[] { t });

    [Theory]
    [MemberData(nameof(MessageTypes))]
    public void Every_message_round_trips_through_the_orchestrator_serializer(Type type)
    {
        var message = Sample.Create(type, seed: 3);
        var serializer = _system.Serialization.FindSerializerFor(message);
        Assert.IsType<OrchestratorSerializer>(serializer);
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
        var bytes = serializer.ToBinary(message);
        var back = _system.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
        Assert.Equal(Sample.Describe(message), Sample.Describe(back));
    }

    [Fact]
    public void Every_marker_type_has_a_manifest_and_manifests_are_unique()
    {
        var types = MessageTypes().Select(t => (Type)t[0]).ToHashSet();
        Assert.Equal(types.OrderBy(t => t.FullName), OrchestratorSerializer.Manifests.Keys.OrderBy(t => t.FullName));
        Assert.Equal(OrchestratorSerializer.Manifests.Count, OrchestratorSerializer.Manifests.Values.Distinct().Count());
    }

    [Fact]
    public void A_decoded_message_with_null_where_its_type_allows_none_is_refused_naming_the_member()
    {
        var serializer = new OrchestratorSerializer((ExtendedActorSystem)_system);
        // What a hand-written MessagePack sender can put on the wire: GetJob(nil), a peer list with a nil in it.
        var getJob = MessagePack.MessagePackSerializer.Serialize(new object?[] { null });
        Assert.Contains("GetJob.Id is null", Assert.Throws<SerializationException>(() => serializer.FromBinary(getJob, "j.get")).Message);
        var start = serializer.ToBinary(new TrainingProtocol.StartTraining("job-1", "{}", 1, 0, 2, ["a", null!]));
        Assert.Contains("StartTraining.Peers[1] is null", Assert.Throws<SerializationException>(() => serializer.FromBinary(start, "t.start")).Message);
        var inventory = serializer.ToBinary(new ClusterProtocol.WorkerInventory("node", [new ClusterProtocol.DeviceInfo(null!, 0, null)], null));
        Assert.Contains("WorkerInventory.Devices[0].Type is null", Assert.Throws<SerializationException>(() => serializer.FromBinary(inventory, "c.inv")).Message);
        // Nullable members stay nullable: an idle worker's inventory and a completion without metrics decode.
        Assert.Null(((ClusterProtocol.WorkerInventory)serializer.FromBinary(serializer.ToBinary(new ClusterProtocol.WorkerInventory("node", [], null)), "c.inv")).RunningJob);
    }

    [Fact]
    public void Type_name_JSON_and_remote_deployment_payloads_are_refused_unread_by_the_shipped_configuration()
    {
        // What Akka resolves "json" to (its System.Object fallback) is the refusing stand-in.
        var json = _system.Serialization.FindSerializerForType(typeof(object), "json");
        Assert.IsType<NoJsonSerializer>(json);
        Assert.Equal(1, json.Identifier);
        // A type-named payload as Akka's Newtonsoft serializer writes it: never read, so nothing is created.
        var payload = System.Text.Encoding.UTF8.GetBytes("{\"$type\":\"System.IO.FileInfo, System.IO.FileSystem\",\"fileName\":\"/tmp/x\"}");
        Assert.Contains("switched off", Assert.Throws<SerializationException>(() => _system.Serialization.Deserialize(payload, 1, typeof(object))).Message);
        Assert.Throws<SerializationException>(() => _system.Serialization.Deserialize([1, 2, 3], 3, typeof(object)));
        // Nothing of ours can go out through them either.
        Assert.Throws<SerializationException>(() => { json.ToBinary(new Dictionary<string, object>()); });
    }

    [Fact]
    public void Of_Akka_Remote_s_own_messages_only_death_watch_identify_and_heartbeats_are_decoded()
    {
        // (ConfigSpec pins that reference.conf puts these two in place of Akka Remote's own.)
        var misc = new GuardedMiscSerializer((ExtendedActorSystem)_system);
        Assert.Equal(16, misc.Identifier);
        Assert.Null(((Identify)misc.FromBinary(misc.ToBinary(new Identify(null)), "ID")).MessageId);
        Assert.IsType<PoisonPill>(misc.FromBinary(misc.ToBinary(PoisonPill.Instance), "PP"));   // untrusted mode drops it after decoding
        // Status.Failure carries an exception that Akka would rebuild from the type name in the payload: refused unread.
        var failure = new Status.Failure(new InvalidOperationException("x"));
        var bytes = misc.ToBinary(failure);
        Assert.Contains("is not accepted here", Assert.Throws<SerializationException>(() => misc.FromBinary(bytes, misc.Manifest(failure))).Message);
        var system = new GuardedSystemMessageSerializer((ExtendedActorSystem)_system);
        Assert.Equal(22, system.Identifier);
        Assert.Throws<SerializationException>(() => system.FromBinary([], typeof(Akka.Dispatch.SysMsg.Terminate)));
    }

    [Fact]
    public void An_unknown_manifest_or_garbage_is_a_serialization_exception()
    {
        var serializer = new OrchestratorSerializer((ExtendedActorSystem)_system);
        Assert.Throws<SerializationException>(() => serializer.FromBinary([0x90], "no.such.manifest"));
        Assert.Throws<SerializationException>(() => serializer.FromBinary([0xc1, 0x00, 0xff], "j.submit"));
    }

    [Fact]
    public void A_ring_chunk_sends_only_its_data_and_its_frame_goes_out_without_a_copy()
    {
        var serializer = new OrchestratorSerializer((ExtendedActorSystem)_system);
        var pooled = new byte[70_000];
        pooled[0] = 1; pooled[999] = 2;
        var bytes = serializer.ToBinary(new RingChunk(1, 2, 0, 5, pooled, 1000));
        Assert.Equal(RingChunk.HeaderBytes + 1000, bytes.Length);
        var back = (RingChunk)serializer.FromBinary(bytes, "r.chunk");
        Assert.Equal((1, 2L, 0, 5, 1000), (back.Generation, back.Collective, back.FromRank, back.Sequence, back.Length));
        Assert.Equal(2, back.Data[999]);
        Assert.Same(bytes, back.Payload);   // received: the chunk reads its values where they landed

        var framed = RingChunk.Frame(3, 4, 1, 6, pooled.AsSpan(0, 1000));
        Assert.Same(framed.Payload, serializer.ToBinary(framed));   // sent: the frame is the message's own array
    }

    [Fact]
    public void A_ring_chunk_frame_that_lies_about_its_length_is_a_serialization_exception()
    {
        var serializer = new OrchestratorSerializer((ExtendedActorSystem)_system);
        var frame = RingChunk.Frame(1, 2, 0, 5, new byte[100]).ToFrame();
        Assert.Throws<SerializationException>(() => serializer.FromBinary(frame[..^1], "r.chunk"));
        Assert.Throws<SerializationException>(() => serializer.FromBinary(new byte[10], "r.chunk"));
    }

    public void Dispose() => _system.Terminate().Wait(TimeSpan.FromSeconds(10));

    /// <summary>Builds instances with distinct non-default values for every constructor parameter.</summary>
    private static class Sample
    {
        public static object Create(Type type, int seed)
        {
            if (type == typeof(string)) return $"s{seed}";
            if (type == typeof(int)) return seed + 1;
            if (type == typeof(long)) return seed + 100L;
            if (type == typeof(double)) return seed + 0.25;
            if (type == typeof(bool)) return true;
            if (type == typeof(byte[])) return new byte[] { 1, 2, (byte)seed };
            if (type == typeof(int[])) return new[] { seed, seed + 1 };
            if (Nullable.GetUnderlyingType(type) is { } inner) return Create(inner, seed);
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>))
            {
                var element = type.GetGenericArguments()[0];
                var list = Array.CreateInstance(element, 2);
                list.SetValue(Create(element, seed + 1), 0);
                list.SetValue(Create(element, seed + 2), 1);
                return list;
            }
            if (type == typeof(IReadOnlyDictionary<string, double>))
                return new Dictionary<string, double> { [$"m{seed}"] = seed + 0.5, [$"n{seed}"] = seed + 1.5 };
            // A chunk travels as its wire frame, which a received chunk keeps as its payload.
            if (type == typeof(RingChunk)) return RingChunk.Frame(seed, seed + 1L, seed + 2, seed + 3, [1, 2, 3, (byte)seed]);
            var singleton = type.GetField("Instance", BindingFlags.Public | BindingFlags.Static);
            if (singleton is not null) return singleton.GetValue(null)!;
            var ctor = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
            var args = ctor.GetParameters().Select((p, i) => Create(p.ParameterType, seed * 10 + i)).ToArray();
            return ctor.Invoke(args);
        }

        /// <summary>Records print their members, but arrays print as type names: spell them out.</summary>
        public static string Describe(object? value) => value switch
        {
            null => "null",
            string s => s,
            IReadOnlyDictionary<string, double> d => "{" + string.Join(",", d.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}:{kv.Value}")) + "}",
            System.Collections.IEnumerable items => "[" + string.Join(",", items.Cast<object?>().Select(Describe)) + "]",
            _ when value.GetType().IsPrimitive => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)!,
            _ => value.GetType().Name + "{" + string.Join(";", value.GetType().GetProperties()
                .Where(p => p.GetIndexParameters().Length == 0 && p.Name != "EqualityContract" && !p.PropertyType.IsByRefLike)
                .Select(p => p.Name + "=" + Describe(p.GetValue(value)))) + "}",
        };
    }
}
