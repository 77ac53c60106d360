/// Wing & Gong's linearizability check: is there one sequential order of the operations of a concurrent
/// history that respects real time (an operation that returned before another was invoked comes first)
/// and program order, and in which the sequential specification returns every observed result? A depth-
/// first search over the operations that may come next, with the states already seen pruned (Lowe's
/// memoisation: same set of operations done and same abstract state ⇒ same future).
module Conformance.Properties.Linearizability

open System.Collections.Generic

/// One operation of a history: who did it, its place in that actor's program, what it returned, and
/// the logical clock when it was invoked and when it returned.
type Op<'c> =
    {
        Actor: int
        Seq: int
        Command: 'c
        /// Which part of the command this is (an unmap is two operations: release, then notify).
        Half: int
        Result: string
        Invoked: int64
        Returned: int64
    }

/// The sequential specification, driven by the search: reset to the initial state, apply one operation
/// (returning its result), and summarise the state for memoisation.
type Spec<'c> =
    { Reset: unit -> unit
      Apply: Op<'c> -> string
      Fingerprint: unit -> string }

type Verdict<'c> =
    | Linearizable of order: Op<'c> list
    /// No order explains the history; the longest explained prefix, and the operations that could not
    /// come next (with what the specification would have returned instead).
    | NotLinearizable of longest: Op<'c> list * blocked: (Op<'c> * string) list
    /// The search gave up after this many steps (never seen with the generated sizes; reported, not passed).
    | Undecided of steps: int

/// `accepts` judges a complete order's final state (the balance property wants the state of the run too;
/// different orders with the same results can leave different states, e.g. the order of a client list).
let checkWith (spec: Spec<'c>) (maxSteps: int) (accepts: unit -> bool) (history: Op<'c>[]) : Verdict<'c> =
    // Candidates are tried in invocation order: usually the first one fits, and every misfit costs a replay.
    let ops = history |> Array.sortBy (fun o -> o.Invoked, o.Actor, o.Seq)
    let n = ops.Length

    if n > 63 then
        invalidArg "ops" "histories of more than 63 operations are not supported"

    let all = if n = 0 then 0UL else (1UL <<< n) - 1UL
    // predecessors.[i]: operations that must come before i
    let predecessors =
        Array.init n (fun i ->
            let mutable m = 0UL

            for j in 0 .. n - 1 do
                if j <> i then
                    let a, b = ops.[j], ops.[i]

                    if a.Returned < b.Invoked || (a.Actor = b.Actor && a.Seq < b.Seq) then
                        m <- m ||| (1UL <<< j)

            m)

    let seen = HashSet<struct (uint64 * string)>()
    let mutable steps = 0
    let mutable longest: Op<'c> list = []
    let mutable blockedAtLongest: (Op<'c> * string) list = []

    let replay (path: Op<'c> list) =
        spec.Reset()

        for op in List.rev path do
            spec.Apply op |> ignore

    let rec search (path: Op<'c> list) (depth: int) (doneMask: uint64) (stateMatchesPath: bool) : Op<'c> list option =
        if doneMask = all then
            (if accepts () then Some(List.rev path) else None)
        elif steps > maxSteps then
            None
        else
            let mutable inSync = stateMatchesPath
            let mutable found = None
            let mismatches = List<Op<'c> * string>()
            let mutable i = 0

            while found.IsNone && i < n do
                let bit = 1UL <<< i

                if doneMask &&& bit = 0UL && predecessors.[i] &&& doneMask = predecessors.[i] then
                    if not inSync then
                        replay path

                    steps <- steps + 1
                    let op = ops.[i]
                    let got = spec.Apply op
                    inSync <- false

                    if got = op.Result then
                        if seen.Add(struct (doneMask ||| bit, spec.Fingerprint())) then
                            found <- search (op :: path) (depth + 1) (doneMask ||| bit) true
                    else
                        mismatches.Add((op, got))

                i <- i + 1

            if found.IsNone && depth >= longest.Length && mismatches.Count > 0 then
                longest <- List.rev path
                blockedAtLongest <- List.ofSeq mismatches

            found

    spec.Reset()

    match search [] 0 0UL true with
    | Some order -> Linearizable order
    | None when steps > maxSteps -> Undecided steps
    | None -> NotLinearizable(longest, blockedAtLongest)

let check (spec: Spec<'c>) (maxSteps: int) (history: Op<'c>[]) =
    checkWith spec maxSteps (fun () -> true) history
