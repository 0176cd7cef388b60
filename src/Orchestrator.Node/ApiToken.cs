using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.Node;

/// <summary>
/// The job API's bearer token: the configured one, else the one in <c>&lt;data-dir&gt;/api-token</c>,
/// else a new random 256-bit token written there with mode 0600 at first start.
/// </summary>
public sealed class ApiToken
{
    public const string FileName = "api-token";
    private readonly byte[] _expected;

    private ApiToken(string token) => _expected = Encoding.UTF8.GetBytes(token);

    public static ApiToken Load(string configured, string dataDir)
    {
        if (configured.Length > 0) return new ApiToken(configured);
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, FileName);
        if (File.Exists(path))
        {
            var existing = File.ReadAllText(path).Trim();
            if (existing.Length >= 16) return new ApiToken(existing);
            throw new NodeUsageException($"{path}: the API token is shorter than 16 characters; delete the file to have a new one made");
        }
        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;   // 0600
        using (var file = new FileStream(path, create))
        {
            file.Write(Encoding.ASCII.GetBytes(token + "\n"));
            file.Flush(flushToDisk: true);
        }
        return new ApiToken(token);
    }

    /// <summary>Constant-time comparison of an <c>Authorization</c> header against <c>Bearer &lt;token&gt;</c>.</summary>
    public bool Accepts(string? authorization)
    {
        const string scheme = "Bearer ";
        if (authorization is null || !authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        var given = Encoding.UTF8.GetBytes(authorization[scheme.Length..].Trim());
        return CryptographicOperations.FixedTimeEquals(given, _expected);
    }
}
