using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orchestrator.Training.Optim;

// Why these exist: TorchSharp 0.107's SGD and Adam pass numbers to libtorch as implicitly converted
// Scalars (`buf.mul_(momentum)`). Such a temporary is unreachable as soon as its handle has been read,
// so a garbage collection on another thread can run its finalizer, which frees the native Scalar while
// libtorch is still reading it. libtorch then fails with "Expected false to be true ... toDouble at
// Scalar.h:140" (seen here: a 2-worker job failed at step ~250), or worse, reads a wrong number. These
// subclasses run TorchSharp's update rule, operation for operation (so results are bit-identical to
// TorchSharp's), with every Scalar a `using` local that lives until the update is done,
// and only overloads that take every Scalar from us (`add_(Scalar)` makes its alpha of 1 implicitly).
// OptimizerTests runs them while another thread collects garbage without pause.
// The state classes and `state_dict()` are TorchSharp's, so checkpoints are unchanged.

/// <summary>TorchSharp's SGD update (momentum, dampening, Nesterov, weight decay, maximize) with its Scalars kept alive.</summary>
public sealed class ScalarSafeSgd(IEnumerable<Parameter> parameters, double lr, double momentum = 0, double dampening = 0,
    double weightDecay = 0, bool nesterov = false, bool maximize = false)
    : SGD(parameters, lr, momentum, dampening, weightDecay, nesterov, maximize)
{
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var options = group.Options;
        var momentum = options.momentum!.Value;
        var weightDecay = options.weight_decay!.Value;
        var nesterov = options.nesterov!.Value;
        var lr = options.LearningRate!.Value;
        using var momentumScalar = momentum.ToScalar();
        using var weightDecayScalar = weightDecay.ToScalar();
        using var keep = (1 - options.dampening!.Value).ToScalar();
        using var alpha = (options.maximize!.Value ? lr : -lr).ToScalar();

        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (weightDecay != 0) grad = grad.add(param, alpha: weightDecayScalar);
            if (momentum != 0)
            {
                var buf = state.momentum_buffer;
                if (buf is null)
                {
                    buf = grad.clone().detach().DetachFromDisposeScope();
                    state.momentum_buffer = buf;
                }
                else
                {
                    buf.mul_(momentumScalar).add_(grad, alpha: keep);
                }
                grad = nesterov ? grad.add(buf, alpha: momentumScalar) : buf;
            }
            param.add_(grad, alpha: alpha);
        }
    }, closure);
}

/// <summary>
/// TorchSharp's Adam update (bias correction, AMSGrad, weight decay, maximize) with its Scalars kept alive.
/// With <paramref name="decoupledWeightDecay"/> it is AdamW (as PyTorch's: the parameter shrinks by
/// lr × weightDecay before the Adam update, and the decay is not added to the gradient); its state is
/// Adam's, so checkpoints of both look alike.
/// </summary>
public sealed class ScalarSafeAdam(IEnumerable<Parameter> parameters, double lr, double beta1 = 0.9, double beta2 = 0.999,
    double eps = 1e-8, double weightDecay = 0, bool amsgrad = false, bool maximize = false, bool decoupledWeightDecay = false)
    : Adam(parameters, lr, beta1, beta2, eps, weightDecay, amsgrad, maximize)
{
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var options = (Options)group.Options;
        var beta1 = options.beta1!.Value;
        var beta2 = options.beta2!.Value;
        var weightDecay = options.weight_decay!.Value;
        var amsgrad = options.amsgrad!.Value;
        var maximize = options.maximize!.Value;
        var lr = options.LearningRate!.Value;
        using var beta1Scalar = beta1.ToScalar();
        using var beta2Scalar = beta2.ToScalar();
        using var oneMinusBeta1 = (1 - beta1).ToScalar();
        using var oneMinusBeta2 = (1 - beta2).ToScalar();
        using var weightDecayScalar = weightDecay.ToScalar();
        using var epsScalar = options.eps!.Value.ToScalar();
        using var one = 1.ToScalar();   // add_(Scalar) would make this alpha itself, implicitly
        using var decayFactor = (1 - lr * weightDecay).ToScalar();

        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (maximize) grad = grad.neg();
            state.step += 1;
            var biasCorrection1 = 1 - Math.Pow(beta1, state.step);
            var biasCorrection2 = 1 - Math.Pow(beta2, state.step);
            if (weightDecay != 0)
            {
                if (decoupledWeightDecay) param.mul_(decayFactor);
                else grad = grad.add(param, alpha: weightDecayScalar);
            }

            state.exp_avg.mul_(beta1Scalar).add_(grad, alpha: oneMinusBeta1);
            state.exp_avg_sq.mul_(beta2Scalar).addcmul_(grad, grad.conj(), value: oneMinusBeta2);

            using var sqrtBiasCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
            Tensor denom;
            if (amsgrad)
            {
                var previous = state.max_exp_avg_sq;
                state.max_exp_avg_sq = maximum(previous, state.exp_avg_sq).DetachFromDisposeScope();
                previous.Dispose();
                denom = state.max_exp_avg_sq.sqrt().div(sqrtBiasCorrection2).add_(epsScalar, one);
            }
            else
            {
                denom = state.exp_avg_sq.sqrt().div(sqrtBiasCorrection2).add_(epsScalar, one);
            }
            using var stepSize = (-(lr / biasCorrection1)).ToScalar();
            param.addcdiv_(state.exp_avg, denom, value: stepSize);
        }
    }, closure);
}
