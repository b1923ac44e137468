#!/usr/bin/env bash
# The study in one command: pre-train the five FINs, run the four SER ablations over paired seeds, write the report.
# Variables (environment or `make reproduce VAR=...`):
#   DATASET (combined)  ROOT (dataset.root; empty for the embedded corpus)  ARCH (spectral)  HEAD (conv1d)
#   SPLIT (speaker)  SEEDS (0,1,2,3,4)  FIN_ARGS / SER_ARGS (extra overrides, e.g. training.max_epochs=5)
#   OUT (outputs/reproduce/<time>)  REPORT (outputs/report)
#   FOLDS (empty: one speaker split; all, or a list like 0,2: the SER runs over those speaker folds, SPLIT then
#   defaults to speaker_folds)  NFOLDS (4; with SPLIT=emobox_folds the corpus's count: RAVDESS 6, SAVEE 4, ESD 5)
#   FRACTIONS (1.0; e.g. 0.1,0.2,0.5,1.0: datamodule.train_fraction of every SER run)
#   CONTROLS (empty; 1 also runs ser_fin_closed_form, ser_sincnet and ser_leaf on the same seeds: docs/ser.md)
#   LEAVE_ONE_OUT (empty; 1 also runs ser_fin_finetuned with each FIN left out in turn, front_end.features: the
#   report's "What each FIN is worth")
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
DATASET=${DATASET:-combined}
ARCH=${ARCH:-spectral}
HEAD=${HEAD:-conv1d}
SPLIT=${SPLIT:-$([[ -n "${FOLDS:-}" ]] && echo speaker_folds || echo speaker)}
NFOLDS=${NFOLDS:-4}
FRACTIONS=${FRACTIONS:-1.0}
SEEDS=${SEEDS:-0,1,2,3,4}
OUT=${OUT:-outputs/reproduce/$(date +%Y-%m-%d_%H-%M-%S)}
REPORT=${REPORT:-outputs/report}
data=("dataset=$DATASET" "paths.fin_dir=$OUT/fins")
if [[ -n "${ROOT:-}" ]]; then data+=("dataset.root=$ROOT"); fi
# FINs see no emotion label: they pre-train once on the speaker split, whatever folds the SER runs cross.
fin_split=$([[ "$SPLIT" == *folds ]] && echo speaker || echo "$SPLIT")
# ++: a -m sweep composes its primary config before any job picks its experiment (the FIN default has no such key).
ser=("split=$SPLIT" "++datamodule.train_fraction=$FRACTIONS")
if [[ "${FOLDS:-}" == all ]]; then FOLDS=$(seq -s, 0 $((NFOLDS - 1))); fi
if [[ -n "${FOLDS:-}" ]]; then ser+=("split.folds=$NFOLDS" "split.fold=$FOLDS"); fi

echo "== FINs: five features, fin_arch=$ARCH, on $DATASET -> $OUT/fin"
# shellcheck disable=SC2086
"$PYTHON" train.py -m feature=zcr,rms,chroma,mfcc,melspec "fin_arch=$ARCH" "${data[@]}" \
  "split=$fin_split" "hydra.sweep.dir=$OUT/fin" ${FIN_ARGS:-}

echo "== SER: four ablations x seeds $SEEDS x folds ${FOLDS:-none} x fractions $FRACTIONS, ser_head=$HEAD -> $OUT/ser"
# shellcheck disable=SC2086
"$PYTHON" train.py -m experiment=ser_baseline,ser_fin_frozen,ser_fin_finetuned,ser_fin_scratch "seed=$SEEDS" \
  "ser_head=$HEAD" "fin_arch=$ARCH" "${data[@]}" "${ser[@]}" "hydra.sweep.dir=$OUT/ser" ${SER_ARGS:-}

if [[ -n "${CONTROLS:-}" ]]; then
  echo "== SER controls: closed-form spectral FINs, SincNet, LEAF x seeds $SEEDS, ser_head=$HEAD -> $OUT/controls"
  # shellcheck disable=SC2086
  "$PYTHON" train.py -m experiment=ser_fin_closed_form,ser_sincnet,ser_leaf "seed=$SEEDS" "ser_head=$HEAD" \
    fin_arch=spectral "${data[@]}" "hydra.sweep.dir=$OUT/controls" ${SER_ARGS:-}
fi

if [[ -n "${LEAVE_ONE_OUT:-}" ]]; then
  features=(zcr rms chroma mfcc melspec)
  subsets=()
  for left_out in "${features[@]}"; do
    kept=()
    for feature in "${features[@]}"; do [[ "$feature" != "$left_out" ]] && kept+=("$feature"); done
    subsets+=("[$(IFS=,; echo "${kept[*]}")]")
  done
  echo "== SER: fine-tuned FINs with each FIN left out in turn x seeds $SEEDS, ser_head=$HEAD -> $OUT/leave_one_out"
  # shellcheck disable=SC2086
  "$PYTHON" train.py -m experiment=ser_fin_finetuned "seed=$SEEDS" "ser_head=$HEAD" "fin_arch=$ARCH" "${data[@]}" \
    "${ser[@]}" "front_end.features=$(IFS=,; echo "${subsets[*]}")" "hydra.sweep.dir=$OUT/leave_one_out" ${SER_ARGS:-}
fi

"$PYTHON" scripts/report.py "runs=$OUT" "out=$REPORT"
