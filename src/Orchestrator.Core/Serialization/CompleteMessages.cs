using System.Collections;
using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.Serialization;

namespace Orchestrator.Core.Serialization;

/// <summary>
/// Refuses a decoded message in which a member its type declares non-nullable is null (MessagePack fills a
/// missing or nil key with null whatever the declaration says): a <c>GetJob(null)</c> from the network is a
/// decoding error, dropped by the remoting layer, never an exception inside an actor. Records of this
/// assembly nested in a message (and in its lists and maps) are checked the same way. The member list is
/// worked out once per type from the compiler's nullability annotations.
/// </summary>
public static class CompleteMessages
{
    private const int MaxDepth = 4;
    private static readonly ConcurrentDictionary<Type, Member[]> Members = new();
    private static readonly NullabilityInfoContext Nullability = new();
    private static readonly object NullabilityLock = new();   // NullabilityInfoContext is not thread-safe

    private sealed record Member(string Name, Func<object, object?> Get, bool Required, bool ElementsRequired);

    /// <summary>Throws <see cref="SerializationException"/> naming the first null where the type allows none.</summary>
    public static void Check(object message) => Check(message, message.GetType().Name, 0);

    private static void Check(object value, string path, int depth)
    {
        if (depth > MaxDepth) return;
        foreach (var member in Members.GetOrAdd(value.GetType(), Describe))
        {
            var item = member.Get(value);
            var at = $"{path}.{member.Name}";
            if (item is null)
            {
                if (member.Required) throw new SerializationException($"{at} is null");
                continue;
            }
            if (item is string or byte[]) continue;
            if (item is IDictionary map)
            {
                foreach (DictionaryEntry entry in map)
                {
                    if (entry.Value is null) { if (member.ElementsRequired) throw new SerializationException($"{at}[{entry.Key}] is null"); }
                    else if (IsOurs(entry.Value.GetType())) Check(entry.Value, $"{at}[{entry.Key}]", depth + 1);
                }
            }
            else if (item is IEnumerable list)
            {
                int i = 0;
                foreach (var element in list)
                {
                    if (element is null) { if (member.ElementsRequired) throw new SerializationException($"{at}[{i}] is null"); }
                    else if (IsOurs(element.GetType())) Check(element, $"{at}[{i}]", depth + 1);
                    i++;
                }
            }
            else if (IsOurs(item.GetType())) Check(item, at, depth + 1);
        }
    }

    private static bool IsOurs(Type type) => type.Assembly == typeof(CompleteMessages).Assembly && !type.IsPrimitive && !type.IsEnum;

    private static Member[] Describe(Type type)
    {
        lock (NullabilityLock)
        {
            var members = new List<Member>();
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (property.GetIndexParameters().Length > 0 || property.PropertyType.IsValueType && Nullable.GetUnderlyingType(property.PropertyType) is null
                    && !IsOurs(property.PropertyType)) continue;
                if (property.Name == "EqualityContract") continue;
                var info = Nullability.Create(property);
                bool required = !property.PropertyType.IsValueType && info.ReadState == NullabilityState.NotNull;
                bool elementsRequired = info.GenericTypeArguments.Length > 0
                    ? info.GenericTypeArguments[^1].ReadState == NullabilityState.NotNull && !info.GenericTypeArguments[^1].Type.IsValueType
                    : info.ElementType is { } element && element.ReadState == NullabilityState.NotNull && !element.Type.IsValueType;
                members.Add(new Member(property.Name, property.GetValue, required, elementsRequired));
            }
            return members.ToArray();
        }
    }
}
