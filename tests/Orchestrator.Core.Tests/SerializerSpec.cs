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
    public void An_unknown_manifest_or_garbage_is_a_serialization_exception()
    {
        var serializer = new OrchestratorSerializer((ExtendedActorSystem)_system);
        Assert.Throws<SerializationException>(() => serializer.FromBinary([0x90], "no.such.manifest"));
        Assert.Throws<SerializationException>(() => serializer.FromBinary([0xc1, 0x00, 0xff], "j.submit"));
    }

    [Fact]
    public void A_ring_chunk_sends_only_its_data_not_the_whole_pooled_buffer()
    {
        var serializer = new OrchestratorSerializer((ExtendedActorSystem)_system);
        var pooled = new byte[70_000];
        pooled[0] = 1; pooled[999] = 2;
        var bytes = serializer.ToBinary(new RingChunk(1, 2, 0, 5, pooled, 1000));
        Assert.True(bytes.Length < 1100, $"{bytes.Length} bytes on the wire for 1000 bytes of data");
        var back = (RingChunk)serializer.FromBinary(bytes, "r.chunk");
        Assert.Equal(1000, back.Length);
        Assert.Equal(2, back.Payload[999]);
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
            // A chunk's length must fit its payload (the serializer sends only that much).
            if (type == typeof(RingChunk)) return new RingChunk(seed, seed + 1L, seed + 2, seed + 3, [1, 2, 3, (byte)seed], 4);
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
            System.Collections.IEnumerable items => "[" + string.Join(",", items.Cast<object?>().Select(Describe)) + "]",
            _ when value.GetType().IsPrimitive => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)!,
            _ => value.GetType().Name + "{" + string.Join(";", value.GetType().GetProperties()
                .Where(p => p.GetIndexParameters().Length == 0 && p.Name != "EqualityContract")
                .Select(p => p.Name + "=" + Describe(p.GetValue(value)))) + "}",
        };
    }
}
