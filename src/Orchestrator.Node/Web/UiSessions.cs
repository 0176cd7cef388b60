using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Orchestrator.Node.Web;

/// <summary>
/// The web page's logins: a browser that gave the API token gets a random session id in an HttpOnly, SameSite=Strict
/// cookie (never the token itself), valid for <see cref="Lifetime"/>. Kept in memory: a restarted coordinator asks for the
/// token again. Bounded: past <see cref="Limit"/> sessions the oldest goes.
/// </summary>
public sealed class UiSessions(TimeProvider? clock = null)
{
    public const string Cookie = "orchestrator-session";
    public const int Limit = 1000;
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(12);

    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _expires = new(StringComparer.Ordinal);

    /// <summary>A new session's id (43 characters of base64url, 256 random bits).</summary>
    public string Start()
    {
        var id = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var now = _clock.GetUtcNow();
        foreach (var expired in _expires.Where(s => s.Value <= now).Select(s => s.Key).ToList()) _expires.TryRemove(expired, out _);
        while (_expires.Count >= Limit && _expires.MinBy(s => s.Value) is { Key: { } oldest }) _expires.TryRemove(oldest, out _);
        _expires[id] = now + Lifetime;
        return id;
    }

    public bool IsValid(string? id) =>
        id is { Length: 43 } && _expires.TryGetValue(id, out var expires) && expires > _clock.GetUtcNow();

    public void End(string? id)
    {
        if (id is not null) _expires.TryRemove(id, out _);
    }
}
