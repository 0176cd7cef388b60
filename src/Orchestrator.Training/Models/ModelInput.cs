namespace Orchestrator.Training.Models;

/// <summary>What a built-in model needs to know about its input: single-channel images of Rows×Columns, and the class count.</summary>
public sealed record ModelInput(int Rows, int Columns, int Classes);
